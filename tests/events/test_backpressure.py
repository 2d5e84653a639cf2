"""Backpressure over real sockets: a client that stops reading is resynced, never waited for."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.events.helpers import metric_value, unpack, until, ws_client

BIG = "x" * 6000  # ~6 kB events fill small socket buffers quickly (still carried by NOTIFY)


def server_side(manager, client):
    """The hub subscriber serving ``client`` (matched by the client's local port)."""
    port = client.ws.local_address[1]
    for subscriber in manager.events.hub.sessions:
        if subscriber.sink._protocol.client[1] == port:
            return subscriber
    raise AssertionError("no subscriber for this client")


def stall(manager, client):
    """Stop reading on the client and shrink both ends' buffers so the server backs up within a few events."""
    client.ws.transport.pause_reading()
    subscriber = server_side(manager, client)
    transport = subscriber.sink._transport
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    transport.set_write_buffer_limits(high=8192)
    return subscriber


async def publish_big(admin, bot_id: int, count: int, prefix: str, witness) -> list[dict]:
    """``count`` big events, each its own frame: the next is written only once ``witness`` (a client
    that reads) has received the previous one, so no two can share a batch. Returns what it received."""
    received = []
    for i in range(count):
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', $2)",
                            bot_id, f"{prefix}{i} {BIG}")
        received += await witness.events(1)
    return received


async def healthz(manager) -> dict:
    async with httpx.AsyncClient(base_url=manager.http_url) as http:
        return (await http.get("/healthz")).json()


async def test_a_stalled_subscriber_is_resynced_and_nobody_waits_for_it(start_manager, admin, bot_id):
    async with start_manager(ws_queue_size=4) as manager:
        hub = manager.events.hub
        hub.overflow_threshold = 0  # any overflow counts as overload, to see the health signal
        async with ws_client(manager.ws_url) as healthy, ws_client(manager.ws_url, rcvbuf=4096) as stalled:
            await healthy.subscribe(["bot_events"])
            await stalled.subscribe(["bot_events"])
            subscriber = stall(manager, stalled)
            overflows = metric_value("gordon_manager_ws_overflow_total")
            started = time.monotonic()
            events = await publish_big(admin, bot_id, 40, "e", healthy)
            assert [e["data"]["message"].split(" ", 1)[0] for e in events] == [f"e{i}" for i in range(40)]
            assert time.monotonic() - started < 8
            assert subscriber.overflows >= 1
            assert metric_value("gordon_manager_ws_overflow_total") >= overflows + 1
            body = await healthz(manager)
            assert "ws_subscriber_overload" in body["degraded"]

            stalled.ws.transport.resume_reading()
            frames = []
            while not any(f["type"] == "resync" for f in frames):
                frames.append(await stalled.recv(timeout=5))
            resync = frames[-1]
            assert resync["reason"] == "overflow" and resync["channels"] == ["bot_events"]
            received = [e["data"]["message"].split(" ", 1)[0] for f in frames for e in unpack(f)]
            assert 0 < len(received) < 40 and received == [f"e{i}" for i in range(len(received))]
            # live again once the resync went out
            after = await publish_big(admin, bot_id, 2, "after", healthy)
            assert [e["data"]["message"].split(" ", 1)[0] for e in await stalled.events(2)] == ["after0", "after1"]
            assert [e["data"]["message"].split(" ", 1)[0] for e in after] == ["after0", "after1"]

            hub.overflow_window_s = 0.1  # let the overload subside
            await until(lambda: "ws_subscriber_overload" not in manager.ctx.health.degraded, timeout=5)


async def test_a_client_that_never_reads_is_disconnected_after_the_send_timeout(manager, admin, bot_id):
    hub = manager.events.hub
    hub.send_timeout_s = 0.5
    async with ws_client(manager.ws_url) as healthy, ws_client(manager.ws_url, rcvbuf=4096) as stalled:
        await healthy.subscribe(["bot_events"])
        await stalled.subscribe(["bot_events"])
        stall(manager, stalled)
        active = metric_value("gordon_manager_ws_active_connections")
        assert len(await publish_big(admin, bot_id, 20, "s", healthy)) == 20
        await until(lambda: len(hub.sessions) == 1, timeout=5)
        assert metric_value("gordon_manager_ws_active_connections") == active - 1
        stalled.ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            while True:
                await stalled.recv(timeout=5)


async def test_a_reconnect_storm_is_reported_and_clears(manager):
    hub = manager.events.hub
    for _ in range(7):  # 7 connects within the 5 s window > 1/s
        async with ws_client(manager.ws_url):
            pass
    body = await healthz(manager)
    assert body["status"] == "degraded" and "ws_reconnect_storm" in body["degraded"]
    assert "connects/s" in body["degradedDetails"]["ws_reconnect_storm"]["ws_hub"]
    hub.storm_window_s = 0.1
    await until(lambda: "ws_reconnect_storm" not in manager.ctx.health.degraded, timeout=5)
