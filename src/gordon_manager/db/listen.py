"""The manager's one LISTEN connection, shared by everything in the process that reads NOTIFY.

PostgreSQL signals *every* listening backend of a database on every NOTIFY, whatever its channel,
and each signalled backend then reads the notification queue in a transaction of its own
(``async.c``: ``SignalBackends`` → ``ProcessIncomingNotify``). The manager used to hold four
listening connections (the /ws events listener, the hint relay, the intent relay and the
reconciler's config listener), so each NOTIFY a bot's commit sent woke four backends: four more
transactions and four context switches per notification, in the same CPU burst as the bots' commits.
One connection, dispatching by channel, is woken once.

A subscriber names its channels, a callback per notification, and optionally ``on_listening``
(awaited after every (re)start of LISTEN, with the connection, before the next notification is
read: notifications sent meanwhile were lost, so this is where a subscriber replays or re-reads) and
``on_lost`` (the connection dropped; ``on_listening`` follows once it is back). A failing
``on_listening`` drops the connection and the whole LISTEN is retried with backoff.

The connection is pinged every ``ping_interval_s``; a termination seen by asyncpg wakes the loop at
once. ``sync()`` connects (or adds new subscribers) now, so a caller can be listening before it
serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from gordon_manager.db.connect import DB_ERRORS, connect
from gordon_manager.loops import LoopService

if TYPE_CHECKING:
    from gordon_manager.context import AppContext

logger = logging.getLogger(__name__)

Notified = Callable[[str, str], None]  # (channel, payload)
OnListening = Callable[[asyncpg.Connection], Awaitable[None]]
OnLost = Callable[[str], None]  # (reason)

APPLICATION_NAME = "gordon-manager-listen"  # how the connection shows in pg_stat_activity


@dataclass(frozen=True, eq=False)
class Subscription:
    name: str
    channels: tuple[str, ...]
    notified: Notified
    on_listening: OnListening | None = None
    on_lost: OnLost | None = None


class Listen(LoopService):
    """One dedicated LISTEN connection (not from the pool); subscribers are served by channel."""

    name = "pg-listen"

    def __init__(self, *, url: str, connect_timeout_s: float = 5.0, ping_interval_s: float = 1.0,
                 backoff_max_s: float = 5.0) -> None:
        super().__init__(interval=ping_interval_s)
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._ping_interval_s = ping_interval_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = 0.1
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._subscriptions: list[Subscription] = []
        self._pending: list[Subscription] = []  # subscribed, not yet listening on this connection
        self.connects = 0
        self.error: str | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def server_pid(self) -> int | None:
        return self._conn.get_server_pid() if self._conn is not None else None

    def subscribe(self, name: str, channels: tuple[str, ...], notified: Notified, *,
                  on_listening: OnListening | None = None, on_lost: OnLost | None = None) -> Subscription:
        """Add a subscriber; it listens from the next ``sync()`` or loop iteration (``wake``)."""
        subscription = Subscription(name, tuple(channels), notified, on_listening, on_lost)
        self._subscriptions.append(subscription)
        self._pending.append(subscription)
        self.wake()
        return subscription

    # -- loop --------------------------------------------------------------------------------------
    async def run_once(self) -> None:
        if not await self.sync():
            return
        async with self._lock:
            if self._conn is None:
                return
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await self._conn.fetchval("SELECT 1")
            except DB_ERRORS as exc:
                await self._close(f"{type(exc).__name__}: {exc}")
                self.wake()  # reconnect now

    async def sync(self) -> bool:
        """Connect if needed and start LISTEN for every subscriber not yet listening; False (with backoff) on failure."""
        async with self._lock:
            try:
                if self._conn is not None and self._conn.is_closed():
                    await self._close("connection lost")
                if self._conn is None:
                    await self._connect()
                else:
                    await self._listen(self._conn)
            except DB_ERRORS as exc:
                await self._close(f"{type(exc).__name__}: {exc}")
                self.interval = self._backoff_s
                self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
                return False
        self._backoff_s = 0.1
        self.interval = self._ping_interval_s
        return True

    async def teardown(self) -> None:
        async with self._lock:
            await self._close(None)

    # -- connection (under the lock) ---------------------------------------------------------------
    async def _connect(self) -> None:
        conn = await connect(self._url, timeout=self._connect_timeout_s, application_name=APPLICATION_NAME)
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)
        self._pending = list(self._subscriptions)
        await self._listen(conn)
        self.connects += 1
        self.error = None
        logger.info("LISTEN connection up", extra={"connects": self.connects, "subscribers":
                                                    [s.name for s in self._subscriptions]})

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """LISTEN for the pending subscribers, then run their ``on_listening`` (a subscriber stays pending until it succeeds)."""
        while self._pending:
            subscription = self._pending[0]
            callback = _dispatcher(subscription.notified)
            for channel in subscription.channels:
                await conn.add_listener(channel, callback)
            if subscription.on_listening is not None:
                await subscription.on_listening(conn)
            self._pending.pop(0)

    async def _close(self, reason: str | None) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                async with asyncio.timeout(1.0):
                    await conn.close()
            except Exception:  # already dead: close() is best effort
                conn.terminate()
        if reason is None:
            return
        self.error = reason
        logger.warning("LISTEN connection down", extra={"reason": reason})
        for subscription in self._subscriptions:
            if subscription.on_lost is not None:
                try:
                    subscription.on_lost(reason)
                except Exception:  # one subscriber's bookkeeping must not stop the reconnect
                    logger.exception("LISTEN subscriber failed on a lost connection",
                                     extra={"subscriber": subscription.name})

    def _on_terminated(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn:
            self.wake()  # the next iteration sees it closed and reconnects


def _dispatcher(notified: Notified) -> Callable[[object, int, str, str], None]:
    def callback(_conn: object, _pid: int, channel: str, payload: str) -> None:
        notified(channel, payload)
    return callback


def listen(ctx: AppContext) -> Listen:
    """The process's LISTEN connection, made and started on first use."""
    shared = ctx.services.listen
    if shared is None:
        shared = ctx.services.listen = Listen(url=ctx.database_url, connect_timeout_s=ctx.settings.db_connect_timeout_s)
        ctx.supervisor.start(shared)
    return shared
