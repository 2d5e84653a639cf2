"""GET /exchange/ping against a local HTTP server playing the exchange: ok, slow (timeout), error, down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.conftest import wait_for

TIMEOUT_S = 0.3


class FakeExchange:
    """A tiny HTTP/1.1 server answering /api/v3/ping according to ``mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.connections = 0
        self.paths: list[str] = []
        self.headers: list[str] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.release = asyncio.Event()  # a slow exchange answers only once the test is over

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        except asyncio.IncompleteReadError:  # the client gave up before sending its request
            writer.close()
            return
        self.paths.append(head.split(" ")[1])
        self.headers.append(head.lower())
        if self.mode == "slow":
            await self.release.wait()
        status, body = ("200 OK", b"{}") if self.mode == "ok" else ("503 Service Unavailable", b"{\"code\": -1}")
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def exchange_port() -> int:
    return free_port()


@pytest.fixture
async def exchange(exchange_port) -> AsyncIterator[FakeExchange]:
    fake = FakeExchange()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", exchange_port)
    fake.port = exchange_port
    yield fake
    fake.release.set()
    fake.server.close()


@pytest.fixture
def reads_settings_overrides(exchange_port) -> dict:
    return {"exchange_url": f"http://127.0.0.1:{exchange_port}/", "http_timeout_s": TIMEOUT_S}


async def test_reachable(api, exchange):
    body = (await api.get("/exchange/ping")).json()
    assert body["reachable"] is True and body["statusCode"] == 200 and body["reason"] is None
    assert 0 < body["latencyMs"] < 1000 and body["url"] == f"http://127.0.0.1:{exchange.port}/api/v3/ping"
    assert exchange.paths == ["/api/v3/ping"]
    assert "x-mbx-apikey" not in exchange.headers[0] and "authorization" not in exchange.headers[0]  # no keys


async def test_slow_exchange_times_out_as_a_normal_answer(api, exchange):
    exchange.mode = "slow"
    # The exchange never answers while the request is in flight: only the manager's timeout ends it
    # (no wall-clock bound here: that would be a timing test, and fail under load).
    response = await api.get("/exchange/ping")
    assert response.status_code == 200
    body = response.json()
    assert body["reachable"] is False and "timed out" in body["reason"] and body["latencyMs"] is None
    assert not exchange.release.is_set()
    # The manager did reach the exchange. Whether the request line was read before the timeout depends
    # on the scheduler (a stalled loop can time out between connect and write), so only what is
    # certain is asserted: one connection, and at most this request on it.
    await wait_for(lambda: exchange.connections == 1)
    assert exchange.paths in ([], ["/api/v3/ping"])


async def test_http_error_is_unreachable_with_the_status(api, exchange):
    exchange.mode = "error"
    body = (await api.get("/exchange/ping")).json()
    assert body["reachable"] is False and body["statusCode"] == 503 and body["reason"] == "HTTP 503"
    assert body["latencyMs"] >= 0


async def test_down_exchange_is_unreachable(api):
    response = await api.get("/exchange/ping")  # nothing listens on the port
    assert response.status_code == 200
    body = response.json()
    assert body["reachable"] is False and "Connect" in body["reason"] and body["statusCode"] is None
