"""The /ws handshake and the HTTP head behind a real uvicorn, configured as `serve` configures it.

Issue 14's reproductions: a page on another origin opened /ws and replayed 10 MB; 2,000 idle
sockets were held; a 1 MB header and 20,000 headers were accepted; half-sent requests were held
for 45 s or more.
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.events.helpers import metric_value, ws_client

READ_TOKEN = "read-token-0123456789abcdef"


def status_of(caught: pytest.ExceptionInfo) -> int:
    return caught.value.response.status_code


async def test_another_origin_cannot_open_ws(manager):
    before = metric_value("gordon_manager_refusals_total", reason="origin")
    with pytest.raises(InvalidStatus) as caught:
        async with ws_client(manager.ws_url, origin="http://evil.example"):
            pass
    assert status_of(caught) == 403
    assert b"origin-not-allowed" in caught.value.response.body
    assert metric_value("gordon_manager_refusals_total", reason="origin") == before + 1
    # The console, served by the manager itself, is same-origin.
    async with ws_client(manager.ws_url, origin=f"http://127.0.0.1:{manager.port}") as client:
        await client.send({"type": "ping"})
        await client.until("heartbeat")


async def test_a_rebinding_host_name_cannot_open_ws(manager):
    handshake = (b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert (await exchange(manager.port, handshake % b"evil.example:80")).startswith(b"HTTP/1.1 421 ")
    answer = await exchange(manager.port, handshake % b"localhost", until=b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 101 ")


async def test_an_allowed_origin_opens_ws(start_manager):
    async with start_manager(cors_origins="https://console.example.com") as live:
        async with ws_client(live.ws_url, origin="https://console.example.com") as client:
            await client.send({"type": "ping"})
            await client.until("heartbeat")


async def test_ws_needs_the_read_token_when_one_is_set(start_manager):
    async with start_manager(read_token=READ_TOKEN) as live:
        with pytest.raises(InvalidStatus) as caught:
            async with ws_client(live.ws_url):
                pass
        assert status_of(caught) == 401
        with pytest.raises(InvalidStatus) as caught:
            async with ws_client(live.ws_url, subprotocols=["gordon.v1", "gordon.read-token.wrong-token-0000"]):
                pass
        assert status_of(caught) == 403
        # Browsers: the token as a subprotocol; the server answers with gordon.v1, never echoing the token.
        async with ws_client(live.ws_url, subprotocols=["gordon.v1", f"gordon.read-token.{READ_TOKEN}"]) as client:
            assert client.ws.subprotocol == "gordon.v1"
        # Other clients: the header.
        async with ws_client(live.ws_url, additional_headers={"X-Read-Token": READ_TOKEN}) as client:
            await client.send({"type": "ping"})
            await client.until("heartbeat")


async def test_connections_are_capped_per_client_and_in_total(start_manager):
    async with start_manager(ws_max_connections_per_client=2, ws_max_connections=3) as live:
        async with ws_client(live.ws_url), ws_client(live.ws_url):
            before = metric_value("gordon_manager_refusals_total", reason="ws_connections_per_client")
            with pytest.raises(InvalidStatus) as caught:
                async with ws_client(live.ws_url):
                    pass
            assert status_of(caught) == 429
            assert metric_value("gordon_manager_refusals_total", reason="ws_connections_per_client") == before + 1
            # Another client address (127.0.0.2 is loopback too) still gets in, up to the total.
            async with ws_client(live.ws_url, local_addr=("127.0.0.2", 0)):
                with pytest.raises(InvalidStatus) as caught:
                    async with ws_client(live.ws_url, local_addr=("127.0.0.3", 0)):
                        pass
                assert status_of(caught) == 503
                assert caught.value.response.headers["Retry-After"] == "5"
        # Closed connections give their slots back.
        async with ws_client(live.ws_url), ws_client(live.ws_url):
            pass


async def test_a_frame_over_the_limit_closes_the_connection(start_manager):
    async with start_manager(ws_max_frame_bytes=4096) as live:
        async with ws_client(live.ws_url) as client:
            await client.ws.send("x" * 5000)
            with pytest.raises(ConnectionClosed) as caught:
                await client.recv(timeout=5)
            assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009


async def test_an_unsubscribed_connection_is_closed_when_idle(start_manager):
    async with start_manager(ws_idle_timeout_s=0.5) as live:
        async with ws_client(live.ws_url) as idle, ws_client(live.ws_url) as busy:
            await busy.subscribe(["bot_status"])
            with pytest.raises(ConnectionClosed) as caught:
                while True:
                    await idle.recv(timeout=10)
            assert caught.value.rcvd.code == 1008 and "idle" in caught.value.rcvd.reason
            # The subscribed one, opened at the same time, outlived the idle timeout and still answers.
            await busy.send({"type": "ping"})
            await busy.until("heartbeat")


async def test_a_replay_is_capped_in_bytes(start_manager, admin, bot_id):
    first = None
    for _ in range(8):  # ~8 × 20 kB of payload: over a 64 kB cap, far under the 10,000-row cap
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'big', $2)",
                            bot_id, "m" * 20_000)
        first = first or await admin.fetchval("SELECT max(id) FROM trading.events WHERE channel = 'bot_events'")
    async with start_manager(ws_replay_max_bytes=65_536) as live:
        before = metric_value("gordon_manager_refusals_total", reason="ws_replay_bytes")
        async with ws_client(live.ws_url) as client:
            await client.send({"type": "subscribe", "channels": ["bot_events"], "since": first - 1})
            assert (await client.until("resync"))["reason"] == "too_far_behind"
            await client.until("subscribed")
        assert metric_value("gordon_manager_refusals_total", reason="ws_replay_bytes") == before + 1
    async with start_manager() as live, ws_client(live.ws_url) as client:  # the default 8 MiB cap replays it
        await client.send({"type": "subscribe", "channels": ["bot_events"], "since": first - 1})
        assert (await client.until("subscribed"))["replayed"] >= 8


# -- the HTTP head (http/protocol.py) ----------------------------------------------------------------
async def exchange(port: int, data: bytes, *, timeout: float = 10.0, until: bytes | None = None) -> bytes:
    """Send ``data`` on a fresh connection; what the server answers until it closes (or sends ``until``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server may close while a huge head is still being sent
        chunks = []
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                if until is not None and until in b"".join(chunks):
                    break
        return b"".join(chunks)
    except ConnectionError:
        return b"".join(chunks) if "chunks" in locals() else b""
    finally:
        writer.close()


async def test_a_1mb_header_is_431(manager):
    before = metric_value("gordon_manager_refusals_total", reason="head_size")
    answer = await exchange(manager.port, b"GET /bots HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 1_000_000
                            + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"application/problem+json" in answer
    assert metric_value("gordon_manager_refusals_total", reason="head_size") == before + 1


async def test_20000_headers_are_431(manager):
    head = b"GET /bots HTTP/1.1\r\nHost: localhost\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(20_000))
    answer = await exchange(manager.port, head + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_normal_request_and_keep_alive_pass(manager):
    reader, writer = await asyncio.open_connection("127.0.0.1", manager.port)
    try:
        for _ in range(3):  # the same connection serves one request after another
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200")
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 5)) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
    finally:
        writer.close()


async def test_a_half_sent_head_is_408_after_the_read_timeout(start_manager):
    async with start_manager(request_read_timeout_s=0.5) as live:
        before = metric_value("gordon_manager_refusals_total", reason="read_timeout")
        started = asyncio.get_running_loop().time()
        answer = await exchange(live.port, b"GET /bots HTTP/1.1\r\nHost: local", timeout=10)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert asyncio.get_running_loop().time() - started < 5  # not the 45 s+ of the reproduction
        silent = await exchange(live.port, b"", timeout=10)  # connected, never sends a byte
        assert silent.startswith(b"HTTP/1.1 408 ")
        assert metric_value("gordon_manager_refusals_total", reason="read_timeout") == before + 2
