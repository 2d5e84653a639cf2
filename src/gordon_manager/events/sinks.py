"""Where a subscriber's frames go: the ASGI ``send`` (always works) or uvicorn's transport (fast path).

Fan-out cost is dominated by per-send overhead, not bytes: with 1,000 subscribers every event is
1,000 sends. A server → client frame is unmasked, so without per-message compression its bytes are
identical for every subscriber. When the connection is served by uvicorn's sans-I/O websockets
protocol and no extension was negotiated, ``RawSink`` writes the pre-built frame straight to the
asyncio transport (one ``write`` per subscriber, no per-subscriber framing, no task switch). Any
other server, or a connection that negotiated permessage-deflate (browsers offer it), uses
``AsgiSink``. Both honour the transport's flow control: ``ready()`` is false while the socket's
buffer is above its high-water mark, and then frames wait in the subscriber's bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.websockets import WebSocket

from gordon_manager.events.protocol import Frame

if TYPE_CHECKING:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

logger = logging.getLogger(__name__)


class SinkClosed(Exception):
    """The connection is gone; the writer stops."""


class Sink(Protocol):
    kind: str

    def ready(self) -> bool:
        """True when ``write`` may be called now without buffering beyond the high-water mark."""

    def write(self, frame: Frame) -> None:
        """Write without waiting (only when ``ready()``)."""

    async def send(self, frame: Frame) -> None:
        """Write, waiting for the transport to drain first if needed."""

    def abort(self) -> None:
        """Drop the connection now (a stalled client)."""

    def fast_path(self) -> tuple[Callable[[], bool], Callable[[], bool], Callable[[bytes], None]] | None:
        """(is writable, is closing, write wire bytes) as bound methods for the hub's hot loop, or None."""


class AsgiSink:
    """Frames go through the ASGI ``websocket.send`` message (per-connection framing, compression)."""

    kind = "asgi"

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket

    def ready(self) -> bool:
        return False

    def write(self, frame: Frame) -> None:  # pragma: no cover - never called: ready() is False
        raise RuntimeError("AsgiSink has no synchronous write")

    async def send(self, frame: Frame) -> None:
        try:
            await self._websocket.send({"type": "websocket.send", "text": frame.text})
        except (OSError, RuntimeError) as exc:  # uvicorn's ClientDisconnected is an OSError
            raise SinkClosed(str(exc)) from exc

    def abort(self) -> None:
        """Nothing to abort through ASGI; uvicorn's keepalive closes a dead peer."""

    def fast_path(self) -> None:
        return None


class RawSink:
    """Pre-built frames written to uvicorn's transport (see the module docstring)."""

    kind = "raw"

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._transport: asyncio.WriteTransport = protocol.transport

    def _open(self) -> bool:
        protocol = self._protocol
        return not (protocol.close_sent or protocol.disconnected or self._transport.is_closing())

    def ready(self) -> bool:
        return self._protocol.writable.is_set() and self._open()

    def write(self, frame: Frame) -> None:
        self._transport.write(frame.wire)

    async def send(self, frame: Frame) -> None:
        await self._protocol.writable.wait()  # set again by resume_writing() or connection_lost()
        if not self._open():
            raise SinkClosed("connection closed")
        self._transport.write(frame.wire)

    def abort(self) -> None:
        self._transport.abort()

    def fast_path(self) -> tuple[Callable[[], bool], Callable[[], bool], Callable[[bytes], None]]:
        # Bound methods: the hub calls these once per subscriber per frame. A transport that is
        # closing (peer closed, keepalive timeout, our close) must not be written to; `writable` is
        # cleared by pause_writing() above the transport's high-water mark.
        return self._protocol.writable.is_set, self._transport.is_closing, self._transport.write


def _uvicorn_protocol_class() -> type[WebSocketsSansIOProtocol] | None:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - uvicorn without websockets installed
        return None
    return WebSocketsSansIOProtocol


def make_sink(websocket: WebSocket) -> Sink:
    """RawSink when this connection is a plain uvicorn sans-I/O websocket, else AsgiSink."""
    protocol = _serving_protocol()
    cls = _uvicorn_protocol_class()
    if (cls is not None and isinstance(protocol, cls) and getattr(protocol, "scope", None) is not None
            and protocol.scope.get("client") == websocket.scope.get("client")
            and not protocol.conn.extensions and protocol.transport is not None):
        return RawSink(protocol)
    return AsgiSink(websocket)


def _serving_protocol() -> Any:
    # uvicorn runs the ASGI app in a task whose coroutine is the protocol's own run_asgi(); its
    # frame holds the protocol instance. Anything unexpected here simply means "no fast path".
    task = asyncio.current_task()
    coro = task.get_coro() if task is not None else None
    frame = getattr(coro, "cr_frame", None)
    if frame is None:
        return None
    return frame.f_locals.get("self")
