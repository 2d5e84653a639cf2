"""An ASGI app served by a real uvicorn in its own thread and event loop (for sync test code).

Used where the test driver is synchronous (Schemathesis, a node subprocess): the app runs in a
thread with its own loop, on a loopback socket, and the caller gets its URL once uvicorn listens.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening (an event, not a poll)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        self._ready.set()


@contextmanager
def serve_in_thread(app: Any, *, name: str = "test-uvicorn") -> Iterator[str]:
    """Serve ``app`` until the block ends; yields ``http://127.0.0.1:<port>``."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # request waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()
    server = _Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False), ready)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  (older uvicorn)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by the caller, not lost in the thread
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    assert ready.wait(60), "uvicorn did not start within 60 s"
    assert not failure and server.started, f"uvicorn did not start: {failure}"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
