"""breaker_state over NATS: DB snapshot on subscribe, typed deltas from JetStream, durable across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import nats

from gordon_manager.events.nats_consumer import DURABLE, STREAM, SUBJECT
from tests.events.helpers import NatsServer, breaker_event, until, ws_client


async def publish(url: str, *bodies: bytes, subject: str = "risk.events.breaker") -> None:
    """Publish through JetStream (acknowledged by the server, so stored)."""
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for body in bodies:
            await js.publish(subject, body, timeout=5)
    finally:
        await nc.close()


async def health(manager) -> dict:
    async with httpx.AsyncClient(base_url=manager.http_url) as http:
        return (await http.get("/healthz")).json()


async def wait_consuming(manager) -> None:
    await until(lambda: manager.events.nats.connected and manager.events.nats._sub is not None, timeout=10)


async def test_breaker_snapshot_then_nats_deltas_without_sql(nats_server, start_manager, admin):
    name = f"brk-{uuid.uuid4().hex[:6]}"
    await admin.execute("INSERT INTO trading.breaker_state (breaker, state, reason) VALUES ($1, 'closed', 'ok')",
                        name)
    async with start_manager(bus_nats_url=nats_server.url) as manager:
        await wait_consuming(manager)
        body = await health(manager)
        assert body["checks"]["nats"]["connected"] is True
        assert body["checks"]["nats"]["breakerStateSource"] == "nats"
        assert body["checks"]["nats"]["consumer"] == DURABLE and body["checks"]["nats"]["stream"] == STREAM
        async with ws_client(manager.ws_url) as client:
            assert client.frames[0]["breakerStateSource"] == "nats"
            await client.send({"type": "subscribe", "channels": ["breaker_state"], "since": 1})
            snapshot = await client.until("snapshot")
            assert [i["state"] for i in snapshot["items"] if i["breaker"] == name] == ["closed"]
            await client.until("subscribed")
            # the row change is not forwarded (NATS carries the deltas; no duplicates)...
            await admin.execute("UPDATE trading.breaker_state SET state = 'open' WHERE breaker = $1", name)
            # ...the typed event is
            await publish(nats_server.url, breaker_event(name, "open", reason="daily loss", previous_state="closed",
                                                         data={"loss_pct": 3.1}))
            [event] = await client.events(1, channel="breaker_state")
            assert event["source"] == "nats" and isinstance(event["seq"], int) and "id" not in event
            assert event["data"] == {"breaker": name, "state": "open", "reason": "daily loss",
                                     "at": "2026-05-17T10:00:00Z", "previousState": "closed", "scope": None,
                                     "data": {"loss_pct": 3.1}}  # gordon-risk's keys, as it sent them
            # An absence window (the row change arrives by NOTIFY, not ordered with NATS deltas, so no marker can prove it).
            assert await client.quiet(0.3) == []
            # an invalid event is terminated (not redelivered forever) and the stream goes on
            await publish(nats_server.url, b'{"breaker": "x", "state": "exploded"}', b"not json",
                          breaker_event(name, "half_open"))
            [event] = await client.events(1, channel="breaker_state")
            assert event["data"]["state"] == "half_open"
            assert manager.events.nats.rejected == 2


async def test_nats_restart_loses_no_breaker_event(nats_server, start_manager):
    name = f"brk-{uuid.uuid4().hex[:6]}"
    async with start_manager(bus_nats_url=nats_server.url) as manager:
        await wait_consuming(manager)
        consumer = manager.events.nats
        async with ws_client(manager.ws_url) as client:
            await client.subscribe(["breaker_state"])
            await publish(nats_server.url, *[breaker_event(name, "open", reason=f"r{i}") for i in range(3)])
            assert [e["data"]["reason"] for e in await client.events(3)] == ["r0", "r1", "r2"]

            nats_server.stop()
            await until(lambda: not consumer.connected, timeout=10)
            body = await health(manager)
            assert "peer_down" in body["degraded"] and "nats" in body["degradedDetails"]["peer_down"]
            nats_server.start()  # same port, same -sd: stream and durable consumer survive
            await until(lambda: consumer.connected, timeout=15)
            await publish(nats_server.url, *[breaker_event(name, "half_open", reason=f"r{i}") for i in range(3, 6)])
            assert [e["data"]["reason"] for e in await client.events(3, timeout=15)] == ["r3", "r4", "r5"]
            assert "peer_down" not in (await health(manager))["degraded"]

    # Published while no manager consumes, then NATS restarts: the durable consumer still gets them.
    await publish(nats_server.url, *[breaker_event(name, "closed", reason=f"q{i}") for i in range(4)])
    nats_server.stop()
    nats_server.start()
    async with start_manager(bus_nats_url=nats_server.url) as manager:
        await until(lambda: manager.events.nats.forwarded == 4, timeout=15)
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().consumer_info(STREAM, DURABLE)
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert info.ack_floor.stream_seq == info.delivered.stream_seq == 10
        assert info.config.filter_subject == SUBJECT
    finally:
        await nc.close()


async def test_nats_down_at_start_is_reported_and_recovers(tmp_path: Path, start_manager):
    server = NatsServer(tmp_path / "js")
    async with start_manager(bus_nats_url=server.url) as manager:
        await until(lambda: manager.events.nats._error is not None, timeout=10)
        body = await health(manager)
        assert "peer_down" in body["degraded"]
        assert body["checks"]["nats"]["connected"] is False and "cannot consume" in body["checks"]["nats"]["error"]
        server.start()
        try:
            manager.events.nats.wake()
            await wait_consuming(manager)
            await until(lambda: manager.ctx.health.degraded == [], timeout=10)
        finally:
            server.stop()


async def test_a_failed_handoff_is_redelivered(nats_server, start_manager, monkeypatch):
    name = f"brk-{uuid.uuid4().hex[:6]}"
    async with start_manager(bus_nats_url=nats_server.url) as manager:
        await wait_consuming(manager)
        hub = manager.events.hub
        real_publish = hub.publish
        calls = []

        def flaky(channel, item, event_id=None):
            calls.append(channel)
            if len(calls) == 1:
                raise RuntimeError("hub refused")
            real_publish(channel, item, event_id)

        monkeypatch.setattr(hub, "publish", flaky)
        async with ws_client(manager.ws_url) as client:
            await client.subscribe(["breaker_state"])
            await publish(nats_server.url, breaker_event(name, "open", reason="retry me"))
            [event] = await client.events(1, timeout=10)  # nak(delay=1s) → redelivered → forwarded once
            assert event["data"]["reason"] == "retry me" and len(calls) == 2
            assert await client.quiet(0.3) == []  # an absence window: no third delivery of the acked event
