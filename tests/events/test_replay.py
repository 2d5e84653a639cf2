"""No loss: resume with `since`, late commits, pruned history, listener reconnect with outbox replay."""

from __future__ import annotations

import asyncpg
import httpx

from gordon_manager.events import repo, session
from tests.conftest import Database
from tests.events.helpers import metric_value, until, ws_client


async def insert_events(admin, bot_id: int, kinds: list[str]) -> list[int]:
    """bot_events rows (one transaction each); returns their outbox ids."""
    out = []
    for kind in kinds:
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', $2)", bot_id, kind)
        out.append(await admin.fetchval("SELECT max(id) FROM trading.events WHERE channel = 'bot_events'"))
    return out


async def test_resume_with_since_gets_exactly_what_was_missed(manager, admin, bot_id):
    async with ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events"])
        await insert_events(admin, bot_id, ["a1", "a2", "a3"])
        seen = await client.events(3)
    last = seen[-1]["id"]
    await insert_events(admin, bot_id, [f"m{i}" for i in range(5)])
    await admin.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1) ON CONFLICT DO NOTHING", bot_id)
    replay_before = metric_value("gordon_manager_ws_replay_rows_total")
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["bot_events"], "since": last})
        batch = await client.until("batch")
        assert batch["replay"] is True
        assert [e["data"]["message"] for e in batch["events"]] == [f"m{i}" for i in range(5)]  # no bot_status
        ack = await client.until("subscribed")
        assert ack["replayed"] == 5 and ack["since"] == last
        assert metric_value("gordon_manager_ws_replay_rows_total") == replay_before + 5
        await insert_events(admin, bot_id, ["live"])
        [event] = await client.events(1)
        assert event["data"]["message"] == "live"
        # Nothing twice: events arrive in order, so a duplicate would come before this marker.
        await insert_events(admin, bot_id, ["marker"])
        assert [e["data"]["message"] for e in await client.events(1)] == ["marker"]


async def test_resume_includes_a_transaction_that_committed_late(manager, admin, database: Database, bot_id):
    """Ids are taken at insert, NOTIFY comes at commit: a lower id can arrive after a higher one."""
    slow = await asyncpg.connect(database.admin_url)
    try:
        async with ws_client(manager.ws_url) as client:
            await client.subscribe(["bot_events"])
            tx = slow.transaction()
            await tx.start()
            await slow.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'slow')", bot_id)
            [fast_id] = await insert_events(admin, bot_id, ["fast"])
            [seen] = await client.events(1)
            assert seen["data"]["message"] == "fast"
        await tx.commit()  # committed while the client is away, with an id below what it saw
        hub = manager.events.hub
        late = await until(lambda: hub.late_ids_after(fast_id))
        async with ws_client(manager.ws_url) as client:
            await client.send({"type": "subscribe", "channels": ["bot_events"], "since": fast_id})
            batch = await client.until("batch")
            assert [e["data"]["message"] for e in batch["events"]] == ["slow"]
            assert [e["id"] for e in batch["events"]] == late
    finally:
        await slow.close()


async def test_pruned_history_gets_a_resync_and_the_live_stream(manager, admin, bot_id):
    ids = await insert_events(admin, bot_id, ["old1", "old2", "old3"])
    await admin.execute("UPDATE trading.events SET at = now() - interval '3 days' WHERE id <= $1", ids[1])
    manager.events.pruner.active = lambda: True  # as on the leading replica (this one does not reconcile)
    await manager.events.pruner.run_once()  # default retention: one day
    assert await admin.fetchval("SELECT count(*) FROM trading.events WHERE id = ANY($1)", ids) == 1
    assert manager.events.pruner.pruned >= 2
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["bot_events"], "since": ids[0] - 1})
        resync = await client.until("resync")
        assert resync["reason"] == "pruned" and resync["channels"] == ["bot_events"]
        assert (await client.until("subscribed"))["replayed"] == 0
        await insert_events(admin, bot_id, ["after"])
        [event] = await client.events(1)
        assert event["data"]["message"] == "after"
        # resuming from a retained position still replays exactly
        await client.send({"type": "subscribe", "channels": ["bot_status"], "since": ids[2]})
        assert (await client.until("subscribed"))["replayed"] == 0


async def test_unknown_and_too_far_positions_resync(manager, admin, bot_id, monkeypatch):
    ids = await insert_events(admin, bot_id, ["x1", "x2", "x3", "x4"])
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["bot_events"], "since": 10**12})
        assert (await client.until("resync"))["reason"] == "unknown_position"
        await client.until("subscribed")  # still subscribed, live from now
    monkeypatch.setattr(session, "MAX_REPLAY_ROWS", 2)
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["run_progress", "bot_events"], "since": ids[0] - 1})
        resync = await client.until("resync")
        assert resync["reason"] == "too_far_behind" and resync["channels"] == ["bot_events", "run_progress"]


async def test_database_trouble_during_replay_or_snapshot_is_a_resync(manager, monkeypatch):
    async def broken(*args, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(repo, "replay_for_client", broken)
    monkeypatch.setattr(repo, "breaker_snapshot", broken)
    async with ws_client(manager.ws_url) as client:
        await client.send({"type": "subscribe", "channels": ["bot_events", "breaker_state"], "since": 1})
        first = await client.until("resync")
        second = await client.until("resync")
        assert {first["reason"], second["reason"]} == {"unavailable"}
        assert {tuple(first["channels"]), tuple(second["channels"])} == {("breaker_state",), ("bot_events",)}
        await client.until("subscribed")


async def test_listener_reconnect_replays_what_notify_lost(manager, admin, database: Database, bot_id):
    """The LISTEN connection is cut and kept down; rows written meanwhile (and a late commit) arrive once."""
    listener, listen = manager.events.listener, manager.ctx.services.listen
    failed_attempts = []
    connect = listen._connect

    async def counted_connect():
        try:
            await connect()
        except Exception:
            failed_attempts.append(listen._url)
            raise

    listen._connect = counted_connect
    slow = await asyncpg.connect(database.admin_url)
    try:
        async with ws_client(manager.ws_url) as client:
            await client.subscribe(["bot_events"])
            tx = slow.transaction()
            await tx.start()
            await slow.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'in-flight')", bot_id)
            await insert_events(admin, bot_id, ["before"])
            assert [e["data"]["message"] for e in await client.events(1)] == ["before"]

            good_url, listen._url = listen._url, "postgresql://nobody@127.0.0.1:1/none"
            reconnects, replayed = listener.reconnects, listener.replayed_rows
            pid = listen.server_pid
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await until(lambda: listen.error is not None)  # the loss is handled (subscribers told), not only seen
            assert not listener.connected
            async with httpx.AsyncClient(base_url=manager.http_url) as http:
                body = (await http.get("/healthz")).json()
            assert "peer_down" in body["degraded"] and body["checks"]["eventsListener"]["connected"] is False

            await insert_events(admin, bot_id, ["lost1", "lost2"])
            await tx.commit()  # a lower id, committed while nobody listened
            # The listener stays down over at least one more failed attempt, made after those commits.
            attempts = len(failed_attempts)
            listen.wake()
            await until(lambda: len(failed_attempts) > attempts, timeout=10)
            listen._url = good_url
            listen.wake()
            await until(lambda: listener.reconnects == reconnects + 1, timeout=10)
            events = await client.events(3)
            assert sorted(e["data"]["message"] for e in events) == ["in-flight", "lost1", "lost2"]
            assert listener.replayed_rows == replayed + 3
            await insert_events(admin, bot_id, ["after"])
            assert [e["data"]["message"] for e in await client.events(1)] == ["after"]
            # Nothing twice: events arrive in order, so a duplicate would come before this marker.
            await insert_events(admin, bot_id, ["marker"])
            assert [e["data"]["message"] for e in await client.events(1)] == ["marker"]
    finally:
        await slow.close()
