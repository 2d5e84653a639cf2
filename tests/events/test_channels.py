"""Every channel end to end: a row change in Postgres → NOTIFY → hub → a real WebSocket client."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from gordon_manager.events.protocol import CHANNELS
from tests.events.helpers import metric_value, until, ws_client

# Fields whose keys a user or another service chose: passed as written, never re-cased.
USER_KEYED = {"breaker_state": "data", "source_freshness": "detail", "bot_config_changed": "labels"}


def keys_are_camel(value, skip: str | None = None) -> bool:
    """No key at any depth has an underscore between characters (the value under ``skip`` aside)."""
    if isinstance(value, dict):
        return all(k == skip or ("_" not in k.strip("_") and keys_are_camel(v)) for k, v in value.items())
    if isinstance(value, list):
        return all(keys_are_camel(v) for v in value)
    return True


async def write_one_row_per_channel(admin, bot_id: int) -> str:
    """One change on each watched table; returns the unique tag used in names."""
    tag = uuid.uuid4().hex[:8]
    await admin.execute("INSERT INTO trading.risk_halt (scope, halted, reason, actor) VALUES ($1, true, 'drawdown', "
                        "'gordon-risk')", f"scope-{tag}")
    await admin.execute("INSERT INTO trading.breaker_state (breaker, state, reason, tripped_at, data) "
                        "VALUES ($1, 'open', 'loss', now(), '{\"loss_pct\": 2.5, \"BTC_USDT\": 1}')", f"brk-{tag}")
    await admin.execute("INSERT INTO trading.portfolio_state (bot_id, symbol, qty, avg_entry_price, cash) "
                        "VALUES ($1, 'BTCUSDT', 0.5, 60000.5, 1000.10)", bot_id)
    await admin.execute("INSERT INTO trading.source_freshness (source, last_update_at, stale_after_seconds, detail) "
                        "VALUES ($1, now(), 60, '{\"lag_ms\": 12}')", f"src-{tag}")
    await admin.execute("INSERT INTO trading.backfill_jobs (source, symbol, interval, status, rows_written) "
                        "VALUES ('binance', 'BTCUSDT', '1m', 'running', 42)")
    await admin.execute("UPDATE trading.bot_configs SET labels = $2::jsonb WHERE id = $1", bot_id,
                        f'{{"team_name": "{tag}"}}')
    await admin.execute("INSERT INTO trading.bot_status (bot_id, observed_state, last_error) "
                        "VALUES ($1, 'error', $2) ON CONFLICT (bot_id) DO UPDATE SET last_error = $2", bot_id,
                        f"err-{tag}")
    await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message, data) "
                        "VALUES ($1, 'started', 'hello', '{\"spec_version\": 3, \"paused\": false, \"abandoned_runs\": [1]}')", bot_id)
    await admin.execute("INSERT INTO trading.bot_deploys (bot_id, from_version, candidate, compare_window, "
                        "match_threshold, lease_ttl_s, actor) VALUES ($1, 1, '{\"image\": \"gordon-bot:v2\", "
                        "\"params\": {\"entry_period\": 30}}', 60, 0.95, 30, 'op')", bot_id)
    await admin.execute("INSERT INTO trading.runs (kind, bot_id, strategy, symbol, interval, progress) "
                        "VALUES ('backtest', $1, 'donchian_breakout', 'BTCUSDT', '1m', 0.2500000001)", bot_id)
    return tag


async def test_every_channel_end_to_end_in_camel_case(manager, admin, bot_id):
    async with ws_client(manager.ws_url) as client:
        ack = await client.subscribe(list(CHANNELS))
        assert ack["channels"] == sorted(CHANNELS)
        tag = await write_one_row_per_channel(admin, bot_id)
        mine = {  # other services (the reconciler) write too: pick this test's rows
            "risk_halt_changed": lambda d: d["scope"] == f"scope-{tag}",
            "breaker_state": lambda d: d["breaker"] == f"brk-{tag}",
            "portfolio_state": lambda d: d["botId"] == bot_id,
            "source_freshness": lambda d: d["source"] == f"src-{tag}",
            "backfill_jobs": lambda d: d["rowsWritten"] == 42,
            "bot_config_changed": lambda d: d["labels"] == {"team_name": tag},
            "bot_status": lambda d: d["lastError"] == f"err-{tag}",
            "bot_events": lambda d: d["kind"] == "started",
            "deploy_progress": lambda d: (d.get("candidate") or {}).get("image") == "gordon-bot:v2",
            "run_progress": lambda d: d.get("progress") == 0.25,
        }
        by_channel: dict = {}
        events = []
        while set(by_channel) != set(CHANNELS):
            for event in await client.events(1):
                events.append(event)
                if event["channel"] not in by_channel and mine[event["channel"]](event["data"]):
                    by_channel[event["channel"]] = event
    for event in events:
        assert isinstance(event["id"], int) and event["op"] in ("insert", "update")
        assert keys_are_camel(event["data"], skip=USER_KEYED.get(event["channel"])), event
    assert by_channel["risk_halt_changed"]["data"] == {**by_channel["risk_halt_changed"]["data"],
                                                       "scope": f"scope-{tag}", "halted": True}
    breaker = by_channel["breaker_state"]["data"]
    # gordon-risk's keys as it wrote them: BTC_USDT is not BTCUSDT
    assert breaker["breaker"] == f"brk-{tag}" and breaker["data"] == {"loss_pct": 2.5, "BTC_USDT": 1}
    assert breaker["trippedAt"].endswith("Z")
    position = by_channel["portfolio_state"]["data"]  # exact decimal strings, as GET /portfolio
    assert (position["avgEntryPrice"], position["cash"], position["qty"]) == ("60000.5", "1000.10", "0.5")
    assert position["markPrice"] is None and position["exposure"] == "0"
    assert by_channel["source_freshness"]["data"]["detail"] == {"lag_ms": 12}
    assert by_channel["source_freshness"]["data"]["staleAfterSeconds"] == 60
    assert by_channel["backfill_jobs"]["data"]["rowsWritten"] == 42
    config = by_channel["bot_config_changed"]["data"]
    assert config["params"] == {"fastPeriod": 10, "nestedObj": {"slowPeriod": 20}}  # strategy params: ours
    assert config["labels"] == {"team_name": tag} and config["execution"]["qtyStep"] == "0.00000001"
    assert by_channel["bot_status"]["data"]["botId"] == bot_id
    assert by_channel["bot_events"]["data"]["data"] == {"specVersion": 3, "paused": False, "abandonedRuns": [1]}  # ours: camelCase
    assert by_channel["deploy_progress"]["data"]["candidate"]["params"] == {"entryPeriod": 30}
    assert by_channel["deploy_progress"]["table"] == "bot_deploys"
    assert by_channel["run_progress"]["data"]["progress"] == 0.25  # rounded to 4 decimals
    assert metric_value("gordon_manager_notify_payloads_received_total", channel="bot_events") >= 1
    assert metric_value("gordon_manager_ws_messages_sent_total", channel="run_progress") >= 1


async def test_breaker_snapshot_on_subscribe_then_notify_deltas(manager, admin):
    name = f"brk-{uuid.uuid4().hex[:8]}"
    await admin.execute("INSERT INTO trading.breaker_state (breaker, state, reason, data) "
                        "VALUES ($1, 'half_open', 'probe', '{\"probe_count\": 3}')", name)
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["breaker_state"], "ref": "s1"})
        snapshot = await client.until("snapshot")
        mine = [item for item in snapshot["items"] if item["breaker"] == name]
        assert mine and mine[0]["state"] == "half_open" and mine[0]["data"] == {"probe_count": 3}
        assert mine[0]["updatedAt"].endswith("Z") and snapshot["ref"] == "s1"
        assert (await client.until("subscribed"))["ref"] == "s1"
        await admin.execute("UPDATE trading.breaker_state SET state = 'closed' WHERE breaker = $1", name)
        # the INSERT's own NOTIFY may still be in flight when we subscribe: deltas may repeat the snapshot
        event = {"data": {}}
        while event["data"].get("state") != "closed":
            [event] = await client.events(1)
    assert event["data"]["breaker"] == name and event["op"] == "update"


async def test_payload_too_big_for_notify_is_read_back_from_the_outbox(manager, admin, bot_id):
    message = "x" * 10_000  # the trigger drops the payload above ~7900 bytes
    async with ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events"])
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'small-1')", bot_id)
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'stopped', $2)",
                            bot_id, message)
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'small-2')", bot_id)
        events = await client.events(3)
    assert [e["data"]["kind"] for e in events] == ["paused", "stopped", "paused"]  # order kept
    assert [events[0]["data"]["message"], events[2]["data"]["message"]] == ["small-1", "small-2"]
    assert events[1]["data"]["message"] == message


async def test_compressed_connection_uses_the_asgi_path_and_gets_the_same_events(manager, admin, bot_id):
    async with ws_client(manager.ws_url, compression="deflate") as slow, ws_client(manager.ws_url) as fast:
        await slow.subscribe(["bot_events"])
        await fast.subscribe(["bot_events"])
        kinds = {s.sink.kind for s in manager.events.hub.sessions}
        assert kinds == {"asgi", "raw"}
        for i in range(3):
            await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', $2)", bot_id, f"k{i}")
        a = await slow.events(3)
        b = await fast.events(3)
    assert a == b


async def test_bad_frames_get_error_frames_and_the_connection_survives(manager):
    async with ws_client(manager.ws_url) as client:
        await client.send("{not json")
        assert (await client.until("error"))["code"] == "bad_json"
        await client.send({"type": "subscribe", "channels": ["bogus"], "ref": "r9"})
        error = await client.until("error")
        assert error["code"] == "unknown_channel" and error["ref"] == "r9"
        await client.send({"type": "subscribe"})
        error = await client.until("error")
        assert error["code"] == "bad_message" and error["errors"][0]["loc"] == "channels"
        await client.ws.send(b'{"type":"ping","ref":"bin"}')  # binary frames are accepted too
        assert (await client.until("heartbeat"))["ref"] == "bin"
        await client.send("y" * 20_000)
        assert (await client.until("error"))["code"] == "too_large"
        await client.send({"type": "ping", "ref": "p1"})
        heartbeat = await client.until("heartbeat")
        assert heartbeat["ref"] == "p1" and heartbeat["at"].endswith("Z")
        assert (await client.subscribe(["bot_status"]))["channels"] == ["bot_status"]


async def test_a_bug_while_answering_is_an_internal_error_frame(manager, monkeypatch):
    from gordon_manager.events import session

    async with ws_client(manager.ws_url) as client:
        monkeypatch.setattr(session, "heartbeat_frame", lambda **_: 1 / 0)
        await client.send({"type": "ping"})
        assert (await client.until("error"))["code"] == "internal"
        monkeypatch.undo()
        await client.send({"type": "ping"})
        await client.until("heartbeat")


async def test_unsubscribe_stops_delivery(manager, admin, bot_id):
    async with ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events", "bot_status"])
        await client.send({"type": "unsubscribe", "channels": ["bot_events"], "ref": "u"})
        assert (await client.until("unsubscribed"))["channels"] == ["bot_events"]
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'ignored')", bot_id)
        await admin.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
        # Delivery is in commit order: had 'ignored' been delivered, it would have come first.
        [event] = await client.events(1)
        assert event["channel"] == "bot_status"


async def test_events_in_one_window_go_out_as_one_batch(start_manager, admin, bot_id):
    async with start_manager(ws_batch_window_ms=200) as manager, ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events"])
        batches = metric_value("gordon_manager_ws_batches_sent_total")
        sizes = metric_value("gordon_manager_ws_batch_size_count")
        async with admin.transaction():
            for i in range(5):
                await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', $2)", bot_id, f"b{i}")
        frame = await client.until("batch")
        assert [e["data"]["message"] for e in frame["events"]] == [f"b{i}" for i in range(5)]
        assert metric_value("gordon_manager_ws_batches_sent_total") == batches + 1
        assert metric_value("gordon_manager_ws_batch_size_count") == sizes + 1


async def test_heartbeats_welcome_and_active_connections(manager):
    manager.events.heartbeat_s = 0.2
    before = metric_value("gordon_manager_ws_active_connections")
    async with ws_client(manager.ws_url) as client:
        assert client.frames[0]["breakerStateSource"] == "notify"
        assert client.frames[0]["channels"] == list(CHANNELS)
        assert metric_value("gordon_manager_ws_active_connections") == before + 1
        first = await client.until("heartbeat", timeout=3)
        second = await client.until("heartbeat", timeout=3)
        assert first["at"] <= second["at"]
    await until(lambda: metric_value("gordon_manager_ws_active_connections") == before)


async def test_healthz_says_breaker_state_falls_back_to_notify(manager):
    async with httpx.AsyncClient(base_url=manager.http_url) as http:
        body = (await http.get("/healthz")).json()
    assert body["checks"]["nats"]["configured"] is False
    assert body["checks"]["nats"]["breakerStateSource"] == "notify"
    assert body["checks"]["eventsListener"]["connected"] is True


async def test_plain_http_get_on_ws_is_not_an_upgrade(manager):
    async with httpx.AsyncClient(base_url=manager.http_url) as http:
        response = await http.get("/ws")
    assert response.status_code in (400, 404, 426)
    await asyncio.sleep(0)


async def test_ws_refuses_politely_when_the_events_service_is_not_running(manager):
    import pytest
    from websockets.exceptions import InvalidStatus

    service, manager.ctx.services.events = manager.ctx.services.events, None
    try:
        with pytest.raises(InvalidStatus):
            async with ws_client(manager.ws_url):
                pass
    finally:
        manager.ctx.services.events = service
