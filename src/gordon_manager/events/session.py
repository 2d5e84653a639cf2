"""One /ws connection: a reader (client messages) and its writer task, supervised together.

Whichever ends first ends the connection: a disconnect stops the reader; a stalled client (send
timeout) stops the writer, and the connection is dropped. A bad client frame gets an ``error``
frame; nothing a client sends can kill the server side.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from starlette.websockets import WebSocket, WebSocketState

from gordon_manager.db.connect import DB_ERRORS
from gordon_manager.events import repo
from gordon_manager.events.hub import Hub
from gordon_manager.events.protocol import (
    BREAKER_CHANNEL,
    Ping,
    ProtocolError,
    Subscribe,
    error_frame,
    events_frame,
    heartbeat_frame,
    messages_counter,
    outbox_item,
    parse_client_message,
    resync_frame,
    snapshot_frame,
    subscribed_frame,
    unsubscribed_frame,
    welcome_frame,
)
from gordon_manager.events.sinks import SinkClosed, make_sink
from gordon_manager.events.subscriber import Subscriber, SubscriberStalled
from gordon_manager.http.edge import WS_SUBPROTOCOL_KEY
from gordon_manager.observability import metrics
from gordon_manager.version import __version__

logger = logging.getLogger(__name__)
MAX_REPLAY_ROWS = 10_000
DEFAULT_REPLAY_MAX_BYTES = 8 * 1024 * 1024
REPLAY_FRAME_EVENTS = 500


class Session:
    """Serves one accepted WebSocket until either side ends it."""

    def __init__(self, websocket: WebSocket, *, hub: Hub, pool: asyncpg.Pool, heartbeat_s: Callable[[], float],
                 query_timeout_s: float = 10.0, idle_timeout_s: float = 60.0,
                 replay_max_bytes: int = DEFAULT_REPLAY_MAX_BYTES) -> None:
        self.websocket = websocket
        self.hub = hub
        self.pool = pool
        self._heartbeat_s = heartbeat_s
        self._query_timeout_s = query_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._replay_max_bytes = replay_max_bytes
        self.subscriber: Subscriber | None = None

    async def run(self) -> None:
        """Accept, greet, then run reader and writer until one of them ends."""
        # The subprotocol the edge chose (gordon.v1 when offered; never the read-token one).
        await self.websocket.accept(subprotocol=self.websocket.scope.get("state", {}).get(WS_SUBPROTOCOL_KEY))
        sink = make_sink(self.websocket)
        subscriber = self.subscriber = self.hub.new_subscriber(sink)
        reader = writer = None
        try:
            await subscriber.put(welcome_frame(version=__version__, heartbeat_s=self._heartbeat_s(),
                                               breaker_source=self.hub.breaker_source, last_id=self.hub.last_id))
            reader = asyncio.ensure_future(self._read_loop())
            writer = asyncio.ensure_future(subscriber.run_writer())
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, SubscriberStalled):
                    logger.warning("dropping a stalled WebSocket client", extra={"detail": str(exc)})
                    sink.abort()
                elif exc is not None and not isinstance(exc, SinkClosed):
                    metrics.ERRORS.labels(component="ws", kind=type(exc).__name__).inc()
                    logger.error("WebSocket connection failed", exc_info=exc)
        finally:
            for pending in (reader, writer):
                if pending is not None and not pending.done():
                    pending.cancel()
            await asyncio.gather(*(t for t in (reader, writer) if t is not None), return_exceptions=True)
            self.hub.drop_subscriber(subscriber)
        if (self.websocket.client_state == WebSocketState.CONNECTED
                and self.websocket.application_state == WebSocketState.CONNECTED):
            try:
                await asyncio.wait_for(self.websocket.close(code=1011), timeout=1.0)
            except Exception:  # the peer is already gone
                pass

    async def _read_loop(self) -> None:
        while True:
            # A connection subscribed to nothing holds a slot for nothing: it has the idle timeout to subscribe.
            idle = self.subscriber is not None and not self.subscriber.channels
            try:
                async with asyncio.timeout(self._idle_timeout_s if idle else None):
                    message = await self.websocket.receive()
            except TimeoutError:
                metrics.REFUSALS.labels(reason="ws_idle").inc()
                await self.websocket.close(code=1008, reason=f"idle: no subscription for {self._idle_timeout_s:g} s")
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            try:
                await self._dispatch(raw)
            except ProtocolError as exc:
                await self._put(error_frame(exc.code, exc.detail, ref=exc.ref, errors=exc.errors))
            except (SubscriberStalled, asyncio.CancelledError):
                raise
            except Exception:  # a bug while answering one client message must not end the connection
                metrics.ERRORS.labels(component="ws", kind="dispatch").inc()
                logger.exception("failed to handle a client message")
                await self._put(error_frame("internal", "the server failed to handle this message"))

    async def _put(self, frame) -> None:
        assert self.subscriber is not None
        await self.subscriber.put(frame)

    async def _dispatch(self, raw: str | bytes) -> None:
        message = parse_client_message(raw)
        if isinstance(message, Ping):
            await self._put(heartbeat_frame(last_id=self.hub.last_id, ref=message.ref))
        elif isinstance(message, Subscribe):
            await self._subscribe(message)
        else:
            channels = sorted(set(message.channels))
            assert self.subscriber is not None  # set by run() before the reader starts
            self.hub.detach(self.subscriber, channels)
            await self._put(unsubscribed_frame(channels, ref=message.ref))

    async def _subscribe(self, message: Subscribe) -> None:
        subscriber = self.subscriber
        assert subscriber is not None
        channels = sorted(set(message.channels))
        new = [c for c in channels if c not in subscriber.channels]
        # Hold live frames of the new channels while the snapshot/replay goes out, so nothing is
        # missed between the read and going live, and nothing arrives out of order.
        subscriber.hold(new)
        self.hub.attach(subscriber, new)
        replayed_ids: set[int] = set()
        try:
            if BREAKER_CHANNEL in new:
                await self._snapshot(message.ref)
            replayable = [c for c in new if c != BREAKER_CHANNEL]
            if message.since is not None and replayable:
                replayed_ids = await self._replay(replayable, message.since, message.ref)
            await self._put(subscribed_frame(channels, since=message.since, replayed=len(replayed_ids),
                                             ref=message.ref))
        finally:
            subscriber.release(new, skip_ids=replayed_ids)

    async def _query(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with asyncio.timeout(self._query_timeout_s):
            async with self.pool.acquire() as conn:
                return await fn(conn)

    async def _snapshot(self, ref: str | None) -> None:
        try:
            rows = await self._query(repo.breaker_snapshot)
        except DB_ERRORS as exc:
            logger.warning("breaker snapshot failed", extra={"error": type(exc).__name__})
            await self._put(resync_frame("unavailable", [BREAKER_CHANNEL], detail="snapshot unavailable", ref=ref))
            return
        await self._put(snapshot_frame(BREAKER_CHANNEL, rows, ref=ref))

    async def _replay(self, channels: list[str], since: int, ref: str | None) -> set[int]:
        """Send the outbox rows of ``channels`` after ``since``; returns their ids (resync when impossible)."""
        late = self.hub.late_ids_after(since)

        async def read(conn: asyncpg.Connection) -> tuple[int | None, int | None, list]:
            oldest, newest = await repo.outbox_bounds(conn)
            rows = await repo.replay_for_client(conn, channels=channels, since=since, extra_ids=late,
                                                limit=MAX_REPLAY_ROWS + 1, max_bytes=self._replay_max_bytes)
            return oldest, newest, rows

        try:
            oldest, newest, rows = await self._query(read)
        except DB_ERRORS as exc:
            logger.warning("replay failed", extra={"error": type(exc).__name__})
            await self._put(resync_frame("unavailable", channels, detail="replay unavailable", ref=ref))
            return set()
        too_big = bool(rows) and rows[-1]["running"] > self._replay_max_bytes
        if too_big:
            metrics.REFUSALS.labels(reason="ws_replay_bytes").inc()
        reason = _resync_reason(since, oldest, newest, MAX_REPLAY_ROWS + 1 if too_big else len(rows))
        if reason is not None:
            await self._put(resync_frame(reason, channels, ref=ref,
                                         detail=f"cannot replay after id {since} (oldest retained {oldest}, "
                                                f"newest {newest})"))
            return set()
        for start in range(0, len(rows), REPLAY_FRAME_EVENTS):
            chunk = rows[start:start + REPLAY_FRAME_EVENTS]
            ids = [row["id"] for row in chunk]
            items = [outbox_item(row["id"], row["channel"], row["payload"]) for row in chunk]
            await self._put(events_frame(None, ids, items, replay=True))
            for channel, count in Counter(row["channel"] for row in chunk).items():
                messages_counter(channel).inc(count)
            metrics.WS_REPLAY_ROWS.inc(len(chunk))
            metrics.WS_BATCHES_SENT.inc()
            metrics.WS_BATCH_SIZE.observe(len(chunk))
        return {row["id"] for row in rows}


def _resync_reason(since: int, oldest: int | None, newest: int | None, rows: int) -> str | None:
    """Why ``since`` cannot be replayed exactly, or None."""
    if newest is None or since > newest:
        return "unknown_position" if since > (newest or 0) else None
    if rows > MAX_REPLAY_ROWS:
        return "too_far_behind"
    if since < newest and (oldest is None or since + 1 < oldest):
        return "pruned"
    return None
