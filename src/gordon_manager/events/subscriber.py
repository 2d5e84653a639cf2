"""One connection's outbound side: a bounded queue drained by its own writer task.

The hub calls ``offer()`` and never waits: a frame is written at once when the queue is empty and
the socket is writable (what the writer would do anyway, minus a task switch), queued otherwise,
and when the queue is full the subscriber is *overflowed*: its backlog is dropped, a ``resync``
frame takes its place, and live frames are discarded until that resync has gone out. The writer
sends with a timeout; a client that accepts nothing for that long is stalled and is disconnected.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from gordon_manager.events.protocol import Frame, messages_counter, resync_frame
from gordon_manager.events.sinks import Sink

# How long live frames are checked against the ids a replay already sent.
SKIP_WINDOW_S = 10.0


class SubscriberStalled(Exception):
    """The client accepted nothing within the send timeout."""


class Subscriber:
    """Queue, writer and subscriptions of one WebSocket connection."""

    def __init__(self, sink: Sink, *, queue_size: int, send_timeout_s: float,
                 on_overflow: Callable[[Subscriber], None]) -> None:
        self.sink = sink
        self.channels: set[str] = set()
        self.overflows = 0
        self._queue: deque[Frame] = deque()
        self._max = queue_size
        self._send_timeout_s = send_timeout_s
        self._on_overflow = on_overflow
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._holding: set[str] = set()
        self._held: list[Frame] = []
        self._resync: Frame | None = None
        self._closed = False
        self._skip: set[int] | None = None
        self._skip_until = 0.0
        fast = sink.fast_path()
        # Without a fast path only _is_writable is set (None): offer() reads the other two after it.
        self._is_writable: Callable[[], bool] | None = None
        self._is_closing: Callable[[], bool]
        self._write: Callable[[bytes], None]
        if fast is not None:
            self._is_writable, self._is_closing, self._write = fast
        # True while nothing special is going on (no hold, no pending resync, open): the hot path.
        self._plain = True

    @property
    def closed(self) -> bool:
        return self._closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = value
        self._refresh()

    def _refresh(self) -> None:
        self._plain = not (self._holding or self._resync is not None or self._closed or self._skip is not None)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- live frames (hub) -------------------------------------------------------------------------
    def offer(self, frame: Frame) -> int:
        """Take a live frame without waiting; returns the events written immediately (for metrics)."""
        if (self._plain and not self._queue and self._is_writable is not None and self._is_writable()
                and not self._is_closing()):
            self._write(frame.wire)
            return frame.count
        return self._offer(frame)

    def _offer(self, frame: Frame) -> int:
        if self._skip is not None:
            if time.monotonic() > self._skip_until:
                self._skip = None
                self._refresh()
            else:
                remaining = frame.without(self._skip)
                if remaining is None:
                    return 0
                frame = remaining
        if self._holding and frame.channel in self._holding:
            if len(self._held) >= self._max:
                self._overflow()
            else:
                self._held.append(frame)
            return 0
        if self._resync is not None or self._closed:
            return 0
        if not self._queue and self.sink.ready():
            self.sink.write(frame)
            return frame.count
        if len(self._queue) >= self._max:
            self._overflow()
            return 0
        self._queue.append(frame)
        self._ready.set()
        return 0

    def _overflow(self) -> None:
        self.overflows += 1
        self._queue.clear()
        self._held.clear()
        self._resync = resync_frame("overflow", sorted(self.channels | self._holding),
                                    detail="you fell behind; events were dropped")
        self._queue.append(self._resync)
        self._refresh()
        self._ready.set()
        self._on_overflow(self)

    # -- control frames and replays (connection handler) -------------------------------------------
    async def put(self, frame: Frame) -> None:
        """Queue a frame of this connection only, waiting (bounded by the send timeout) for room."""
        while len(self._queue) >= self._max:
            self._space.clear()
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await self._space.wait()
            except TimeoutError as exc:
                raise SubscriberStalled("no room in the queue within the send timeout") from exc
        if not self._queue and self.sink.ready():
            self.sink.write(frame)
            if frame.count and frame.channel is not None:
                messages_counter(frame.channel).inc(frame.count)
            return
        self._queue.append(frame)
        self._ready.set()

    def hold(self, channels: Iterable[str]) -> None:
        """Keep live frames of ``channels`` aside while a snapshot or replay is being sent."""
        self._holding.update(channels)
        self._refresh()

    def release(self, channels: Iterable[str], *, skip_ids: set[int]) -> None:
        """Deliver the held frames of ``channels`` in order, minus events the replay already sent."""
        channels = set(channels)
        self._holding -= channels
        if skip_ids:
            # A replayed row's NOTIFY may still be on its way to the hub (committed before the
            # replay query, not yet read): keep dropping those ids from live frames for a while.
            self._skip = set(skip_ids) if self._skip is None else self._skip | skip_ids
            self._skip_until = time.monotonic() + SKIP_WINDOW_S
        self._refresh()
        held, self._held = self._held, [f for f in self._held if f.channel not in channels]
        for frame in held:
            if frame.channel not in channels:
                continue
            written = self.offer(frame)
            if written:
                messages_counter(frame.channel).inc(written)

    # -- writer ------------------------------------------------------------------------------------
    async def run_writer(self) -> None:
        """Drain the queue until cancelled; raises SubscriberStalled or SinkClosed."""
        queue = self._queue
        while True:
            if not queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            frame = queue.popleft()
            if len(queue) < self._max:
                self._space.set()
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await self.sink.send(frame)
            except TimeoutError as exc:
                raise SubscriberStalled(f"send blocked for {self._send_timeout_s}s") from exc
            if frame is self._resync:
                self._resync = None
                self._refresh()
            if frame.count and frame.channel is not None:
                messages_counter(frame.channel).inc(frame.count)
