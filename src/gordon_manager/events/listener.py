"""The /ws feed from NOTIFY, a subscriber of the process's one LISTEN connection (``db/listen.py``).

NOTIFY is lost while nobody listens, so after every reconnect the listener replays the outbox
(``trading.events``) from the highest id it saw, plus the ids it noticed missing below it (rows of
transactions that had not committed yet); the ``Sequencer`` drops anything seen twice. Payloads the
trigger left out (over ~8 kB) are read back from the outbox by id, in order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import asyncpg
import orjson

from gordon_manager.db.connect import DB_ERRORS
from gordon_manager.db.listen import Listen
from gordon_manager.events import repo
from gordon_manager.events.hub import Hub
from gordon_manager.events.protocol import BREAKER_CHANNEL, CHANNELS, outbox_item
from gordon_manager.health.state import HealthState
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)
HEALTH_SOURCE = "events_listener"


class Sequencer:
    """Which outbox ids were handed to the hub: deduplication, and what to replay after a reconnect."""

    def __init__(self, *, remember: int = 100_000, max_span: int = 10_000, gap_ttl_s: float = 300.0,
                 max_gaps: int = 10_000) -> None:
        self.high = 0
        self._seen: dict[int, None] = {}
        self._gaps: dict[int, float] = {}  # missing id -> when noticed; insertion order is time order
        self._remember = remember
        self._max_span = max_span
        self._gap_ttl_s = gap_ttl_s
        self._max_gaps = max_gaps

    def start(self, high: int) -> None:
        """Begin after ``high`` (the outbox's max id when we first listened)."""
        self.high = max(self.high, high)

    def accept(self, event_id: int) -> bool:
        """True the first time ``event_id`` is seen."""
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        if len(self._seen) > self._remember:
            del self._seen[next(iter(self._seen))]
        if event_id > self.high:
            if event_id - self.high - 1 <= self._max_span:
                now = time.monotonic()
                for missing in range(self.high + 1, event_id):
                    self._gaps[missing] = now
            self.high = event_id
            self._expire_gaps(now=time.monotonic())
        else:
            self._gaps.pop(event_id, None)
        return True

    def _expire_gaps(self, *, now: float) -> None:
        """Bounded: gaps older than the TTL (rollbacks: their ids never commit) go as new events come, and
        beyond ``max_gaps`` the oldest go too (a replay then cannot ask for them; the client's ``since``
        resume still can)."""
        cutoff = now - self._gap_ttl_s
        while self._gaps:
            oldest, noticed = next(iter(self._gaps.items()))
            if noticed >= cutoff and len(self._gaps) <= self._max_gaps:
                break
            del self._gaps[oldest]

    @property
    def gap_count(self) -> int:
        return len(self._gaps)

    def replay_plan(self) -> tuple[int, list[int]]:
        """(replay ids above this, plus these missing ids); gaps older than the TTL were rollbacks."""
        self._expire_gaps(now=time.monotonic())
        return self.high, sorted(self._gaps)


class NotifyListener(LoopService):
    """Feeds the hub from Postgres NOTIFY, as a subscriber of the process's LISTEN connection
    (``db/listen.py``): replays the outbox each time LISTEN (re)starts; its loop drains the backlog."""

    name = "events-listener"

    def __init__(self, *, listen: Listen, pool: asyncpg.Pool, hub: Hub, health: HealthState, forward_breaker: bool,
                 drain_interval_s: float = 1.0) -> None:
        super().__init__(interval=drain_interval_s)
        self._listen = listen
        self._pool = pool
        self._hub = hub
        self._health = health
        self._forward_breaker = forward_breaker
        self._replaying = True  # until the first LISTEN has started: notifications wait in the backlog
        self._started = False
        self._backlog: deque[str] = deque()
        self._counters = {channel: metrics.NOTIFY_PAYLOADS.labels(channel=channel) for channel in CHANNELS}
        self.sequencer = Sequencer()
        self.reconnects = 0
        self.replayed_rows = 0
        listen.subscribe(self.name, CHANNELS, self._on_notification, on_listening=self._on_listening,
                         on_lost=self._on_lost)

    @property
    def connected(self) -> bool:
        return self._listen.connected and not self._replaying

    # -- loop --------------------------------------------------------------------------------------
    async def run_once(self) -> None:
        try:
            await self._drain()
        except DB_ERRORS as exc:  # the item stays first in the backlog; the next iteration retries it
            logger.warning("events listener could not read a payload back", extra={"error": f"{type(exc).__name__}: {exc}"})

    # -- LISTEN ------------------------------------------------------------------------------------
    async def _on_listening(self, conn: asyncpg.Connection) -> None:
        """LISTEN (re)started: note where the outbox is (first time) or replay what NOTIFY lost."""
        self._replaying = True
        if not self._started:
            high = await repo.max_event_id(conn)
            self.sequencer.start(high)
            if self._hub.last_id is None or high > self._hub.last_id:
                self._hub.last_id = high
        else:
            await self._replay(conn)
            self.reconnects += 1
        self._started = True
        self._replaying = False
        self.wake()  # drain what arrived meanwhile, in order
        self._health.clear_degraded("peer_down", HEALTH_SOURCE)
        self._publish_check()
        logger.info("events listener listening", extra={"reconnects": self.reconnects, "last_id": self.sequencer.high})

    def _on_lost(self, reason: str) -> None:
        self._replaying = True
        self._health.set_degraded("peer_down", HEALTH_SOURCE, "LISTEN connection down; reconnecting")
        self._publish_check(error=reason)

    def _publish_check(self, error: str | None = None) -> None:
        self._health.set_check("eventsListener", connected=self.connected, reconnects=self.reconnects,
                               lastId=self.sequencer.high, replayedRows=self.replayed_rows, error=error)

    async def _replay(self, conn: asyncpg.Connection, page: int = 1000) -> None:
        after, missing = self.sequencer.replay_plan()
        rows = list(await repo.events_by_ids(conn, ids=missing)) if missing else []
        while True:
            for row in rows:
                if self.sequencer.accept(row["id"]):
                    self.replayed_rows += 1
                    metrics.WS_REPLAY_ROWS.inc()
                    self._publish(row["id"], row["channel"], row["payload"])
            batch = await repo.events_after(conn, after=after, limit=page)
            if not batch:
                break
            after = batch[-1]["id"]
            rows = batch
        logger.info("events listener replayed the outbox", extra={"up_to": self.sequencer.high})

    # -- notifications -----------------------------------------------------------------------------
    def _on_notification(self, channel: str, payload: str) -> None:
        counter = self._counters.get(channel)
        if counter is not None:
            counter.inc()
        if self._replaying or self._backlog:
            self._backlog.append(payload)
            self.wake()
            return
        try:
            note = orjson.loads(payload)
            body = note.get("payload")
            if body is None:  # too big for NOTIFY: read it back, in order
                self._backlog.append(payload)
                self.wake()
                return
            self._accept(note, body)
        except Exception:  # a bad payload must not kill the connection's callback
            metrics.ERRORS.labels(component="events_listener", kind="bad_payload").inc()
            logger.exception("could not handle a NOTIFY payload", extra={"channel": channel})

    async def _drain(self) -> None:
        if self._replaying:  # LISTEN is (re)starting: the replay comes first, then this backlog
            return
        while self._backlog:
            payload = self._backlog[0]
            try:
                note = orjson.loads(payload)
                body = note.get("payload")
                if body is None:
                    async with self._pool.acquire() as conn:
                        row = await repo.event_by_id(conn, event_id=int(note["id"]))
                    body = row["payload"] if row is not None else None
            except DB_ERRORS:
                raise  # keep the item; the next iteration retries it
            except Exception:
                metrics.ERRORS.labels(component="events_listener", kind="bad_payload").inc()
                logger.exception("dropping an unreadable NOTIFY payload")
                self._backlog.popleft()
                continue
            self._backlog.popleft()
            if body is not None:
                self._accept(note, body)

    def _accept(self, note: dict[str, Any], body: dict[str, Any]) -> None:
        event_id = int(note["id"])
        if self.sequencer.accept(event_id):
            self._publish(event_id, note["channel"], body)

    def _publish(self, event_id: int, channel: str, body: dict[str, Any]) -> None:
        if channel == BREAKER_CHANNEL and not self._forward_breaker:
            return  # NATS carries breaker deltas; the row change is only counted
        if channel not in CHANNELS:
            return
        self._hub.publish(channel, outbox_item(event_id, channel, body), event_id)
