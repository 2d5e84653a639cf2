"""NotifyRelay: the plumbing shared by the manager's NOTIFY → NATS relays (hints, intents).

One dedicated LISTEN connection (not from the pool) and one NATS connection, both (re)made by
``run_once`` and dropped together when either fails; every ``interval`` the LISTEN connection is
pinged. A subclass names its ``channels`` and handles each notification in ``notified``; the
hooks ``on_nats`` (NATS connected), ``on_listening`` (LISTEN (re)started) and ``on_drop`` (forget
per-connection state) are optional.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats

from gordon_manager.db.connect import connect
from gordon_manager.loops import LoopService

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0


class NotifyRelay(LoopService):
    """LISTEN ``channels`` and hand each notification to ``notified``; reconnect when either side drops."""

    channels: tuple[str, ...] = ()

    def __init__(self, *, database_url: str, nats_url: str, interval: float = 2.0) -> None:
        super().__init__(interval=interval)
        self._database_url = database_url
        self._nats_url = nats_url
        self._conn: asyncpg.Connection | None = None
        self._nc: nats.NATS | None = None

    def notified(self, channel: str, payload: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def on_nats(self) -> None:
        """Called once NATS is connected (``self._nc``)."""

    async def on_listening(self) -> None:
        """Called after LISTEN (re)started: notifications sent meanwhile were lost."""

    async def on_drop(self) -> None:
        """Called before both connections are dropped."""

    async def _on_nats_error(self, exc: Exception) -> None:
        logger.debug("nats client error", extra={"relay": self.name, "error": f"{type(exc).__name__}: {exc}"})

    def _notified(self, _conn, _pid, channel: str, payload: str) -> None:
        self.notified(channel, payload)

    async def run_once(self) -> None:
        try:
            if self._nc is None:
                # As in events/nats_consumer.py: with unlimited reconnects nats-py retries the *first*
                # connect forever (and a shutdown then waits on it); bound it, this loop retries.
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    self._nc = await nats.connect(self._nats_url, name=f"gordon-manager-{self.name}",
                                                  connect_timeout=CONNECT_TIMEOUT_S, allow_reconnect=True,
                                                  max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                                  error_cb=self._on_nats_error)
                await self.on_nats()
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self._database_url, init=False)
                for channel in self.channels:
                    await self._conn.add_listener(channel, self._notified)
                await self.on_listening()
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self.interval)
        except Exception:
            await self._drop()
            raise

    async def _drop(self) -> None:
        await self.on_drop()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), timeout=2.0)
            except Exception:  # closing a broken client is best effort
                logger.debug("nats close failed", exc_info=True)

    async def teardown(self) -> None:
        await self._drop()
