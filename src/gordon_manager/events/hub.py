"""The fan-out hub: per-channel subscriber sets, batching window, delivery log, overload detection.

``publish()`` appends an already-serialised item to the channel's pending batch and schedules a
flush: at once after a quiet window, else when the window since the last flush ends. ``flush()``
builds one frame per channel (an ``event``, or a ``batch``) and offers the very same object to every
subscriber, whose ``offer()`` never waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from itertools import islice

from gordon_manager.events.protocol import CHANNELS, Frame, events_frame, messages_counter
from gordon_manager.events.subscriber import Subscriber
from gordon_manager.health.state import HealthState
from gordon_manager.observability import metrics

HEALTH_SOURCE = "ws_hub"
# How many delivered outbox ids the hub remembers in delivery order, to resume clients exactly
# when transactions committed out of id order (see late_ids_after).
DELIVERY_LOG_SIZE = 65536


class Hub:
    """Channels → subscribers, with batching and health signals."""

    def __init__(self, *, health: HealthState, queue_size: int, batch_window_s: float, send_timeout_s: float,
                 overflow_threshold: int, storm_per_s: float, breaker_source: str) -> None:
        self.health = health
        self.queue_size = queue_size
        self.batch_window_s = batch_window_s
        self.send_timeout_s = send_timeout_s
        self.overflow_threshold = overflow_threshold
        self.storm_per_s = storm_per_s
        self.breaker_source = breaker_source
        self.overflow_window_s = 60.0
        self.storm_window_s = 5.0
        self.sessions: set[Subscriber] = set()
        self._subscribers: dict[str, set[Subscriber]] = {channel: set() for channel in CHANNELS}
        self._pending: dict[str, tuple[list[int | None], list[bytes]]] = {}
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_flush = float("-inf")
        self._overflows: deque[float] = deque()
        self._connects: deque[float] = deque()
        self._order: dict[int, int] = {}
        self._late: deque[tuple[int, int]] = deque(maxlen=4096)
        self._position = 0
        self._max_delivered = 0
        self.last_id: int | None = None

    # -- subscriptions -----------------------------------------------------------------------------
    def new_subscriber(self, sink) -> Subscriber:
        """A subscriber for a new connection, registered for heartbeats and counted for storms."""
        subscriber = Subscriber(sink, queue_size=self.queue_size, send_timeout_s=self.send_timeout_s,
                                on_overflow=self._overflowed)
        self.sessions.add(subscriber)
        metrics.WS_ACTIVE.inc()
        now = time.monotonic()
        self._connects.append(now)
        self._evaluate_storm(now)
        return subscriber

    def drop_subscriber(self, subscriber: Subscriber) -> None:
        """Forget a closed connection."""
        subscriber.closed = True
        self.detach(subscriber, list(subscriber.channels))
        if subscriber in self.sessions:
            self.sessions.discard(subscriber)
            metrics.WS_ACTIVE.dec()

    def attach(self, subscriber: Subscriber, channels: list[str]) -> None:
        for channel in channels:
            self._subscribers[channel].add(subscriber)
            subscriber.channels.add(channel)

    def detach(self, subscriber: Subscriber, channels: list[str]) -> None:
        for channel in channels:
            self._subscribers[channel].discard(subscriber)
            subscriber.channels.discard(channel)

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, channel: str, item: bytes, event_id: int | None = None) -> None:
        """Queue one serialised event for the next flush of ``channel``."""
        pending = self._pending.get(channel)
        if pending is None:
            pending = self._pending[channel] = ([], [])
        pending[0].append(event_id)
        pending[1].append(item)
        if event_id is not None:
            self._log_delivery(event_id)
        if self._timer is None:
            # Throttle, not delay: a first event after a quiet window goes out at once (after the
            # other notifications already read in this loop turn); events arriving within the window
            # after a flush wait for its end and leave together as one batch.
            loop = asyncio.get_running_loop()
            delay = self._last_flush + self.batch_window_s - loop.time()
            self._timer = loop.call_later(delay, self.flush) if delay > 0 else loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send every pending batch now (one encoded frame per channel, shared by all its subscribers)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        if not pending:
            return
        for channel, (ids, items) in pending.items():
            subscribers = self._subscribers.get(channel)
            if not subscribers:
                continue
            frame = events_frame(channel, ids, items)
            written = 0
            for subscriber in subscribers:
                written += subscriber.offer(frame)
            if written:
                messages_counter(channel).inc(written)
            if frame.count > 1:
                metrics.WS_BATCHES_SENT.inc()
                metrics.WS_BATCH_SIZE.observe(frame.count)
        # The window counts from the end of the fan-out, so the loop always gets a window's worth
        # of time for everything else (NOTIFY, client messages) between two flushes.
        self._last_flush = asyncio.get_running_loop().time()

    def broadcast(self, frame: Frame) -> None:
        """Offer a connection-independent frame (heartbeat) to every connection."""
        for subscriber in tuple(self.sessions):
            subscriber.offer(frame)

    # -- delivery log (exact resume) ---------------------------------------------------------------
    def _log_delivery(self, event_id: int) -> None:
        self._position += 1
        self._order[event_id] = self._position
        if event_id < self._max_delivered:
            self._late.append((self._position, event_id))
        else:
            self._max_delivered = event_id
        if self.last_id is None or event_id > self.last_id:
            self.last_id = event_id
        if len(self._order) > DELIVERY_LOG_SIZE:
            for old in list(islice(self._order, len(self._order) - DELIVERY_LOG_SIZE)):
                del self._order[old]

    def late_ids_after(self, since: int) -> list[int]:
        """Ids below ``since`` that this hub delivered *after* ``since`` (their transactions committed late).

        A client resuming from ``since`` has not seen them, and ``id > since`` alone would skip them.
        Unknown when ``since`` is older than the log (or came from another replica): then none.
        """
        position = self._order.get(since)
        if position is None:
            return []
        return [event_id for pos, event_id in self._late if pos > position and event_id < since]

    # -- health ------------------------------------------------------------------------------------
    def _overflowed(self, subscriber: Subscriber) -> None:
        metrics.WS_OVERFLOW.inc()
        now = time.monotonic()
        self._overflows.append(now)
        self._evaluate_overload(now)

    def _evaluate_overload(self, now: float) -> None:
        while self._overflows and self._overflows[0] < now - self.overflow_window_s:
            self._overflows.popleft()
        per_minute = len(self._overflows) * 60.0 / self.overflow_window_s
        if per_minute > self.overflow_threshold:
            self.health.set_degraded("ws_subscriber_overload", HEALTH_SOURCE,
                                     f"{per_minute:.0f} overflows/min > {self.overflow_threshold}")
        else:
            self.health.clear_degraded("ws_subscriber_overload", HEALTH_SOURCE)

    def _evaluate_storm(self, now: float) -> None:
        while self._connects and self._connects[0] < now - self.storm_window_s:
            self._connects.popleft()
        per_second = len(self._connects) / self.storm_window_s
        if per_second > self.storm_per_s:
            self.health.set_degraded("ws_reconnect_storm", HEALTH_SOURCE,
                                     f"{per_second:.1f} connects/s > {self.storm_per_s}")
        else:
            self.health.clear_degraded("ws_reconnect_storm", HEALTH_SOURCE)

    def evaluate_health(self) -> None:
        """Raise or clear the hub's degraded reasons (called on events and by the monitor loop)."""
        now = time.monotonic()
        self._evaluate_overload(now)
        self._evaluate_storm(now)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.health.clear_degraded("ws_subscriber_overload", HEALTH_SOURCE)
        self.health.clear_degraded("ws_reconnect_storm", HEALTH_SOURCE)
