"""Wake-up hints for the bots: PostgreSQL NOTIFY relayed to core NATS.

A bot used to LISTEN on PostgreSQL for new bars and risk changes. PostgreSQL signals every
listening backend of a database on every NOTIFY, whatever its channel, so with one listening backend
per bot each NOTIFY (the event outbox sends a few per decision) woke all N of them: PostgreSQL's CPU
grew with N² (bench/live_loop.py, 100 bots: ~170 transactions per decision, each a backend reading
the notification queue). The manager listens once and republishes:

* ``klines`` ("SYMBOL:INTERVAL", one per inserted (symbol, interval)) → ``gordon.hints.klines.SYMBOL.INTERVAL``;
* ``risk_halt_changed`` and ``breaker_state`` → ``gordon.hints.risk``.

Hints carry no data and may be lost (core NATS, a reconnect): bots still poll for bars
(``GORDON_BOT_POLL_S``) and re-read the risk gate at every heartbeat. Bots without NATS keep
LISTENing themselves. Every manager replica relays (a duplicate hint costs a bot one query).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats
import nats.errors

from gordon_manager.botrunner.contract import HINT_RISK_SUBJECT, klines_hint_subject
from gordon_manager.db.connect import connect
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

KLINES_CHANNEL = "klines"
RISK_CHANNELS = ("risk_halt_changed", "breaker_state")


class HintRelay(LoopService):
    """LISTEN on a dedicated connection, publish each notification as a hint; reconnect when either drops."""

    name = "hint-relay"

    def __init__(self, *, database_url: str, nats_url: str, interval: float = 2.0) -> None:
        super().__init__(interval=interval)
        self._database_url = database_url
        self._nats_url = nats_url
        self._conn: asyncpg.Connection | None = None
        self._nc: nats.NATS | None = None
        self.relayed = 0

    def _subject(self, channel: str, payload: str) -> str | None:
        if channel == KLINES_CHANNEL:
            symbol, _, interval = payload.partition(":")
            return klines_hint_subject(symbol, interval)
        return HINT_RISK_SUBJECT

    def _notified(self, _conn, _pid, channel: str, payload: str) -> None:
        subject = self._subject(channel, payload)
        if subject is None or self._nc is None or not self._nc.is_connected:
            metrics.HINTS.labels(outcome="dropped").inc()
            return
        asyncio.ensure_future(self._publish(subject))

    async def _publish(self, subject: str) -> None:
        try:
            await self._nc.publish(subject, b"")
        except (nats.errors.Error, OSError, AttributeError):
            metrics.HINTS.labels(outcome="dropped").inc()
            return
        self.relayed += 1
        metrics.HINTS.labels(outcome="relayed").inc()

    async def run_once(self) -> None:
        try:
            if self._nc is None:
                self._nc = await nats.connect(self._nats_url, name="gordon-manager-hints", connect_timeout=2,
                                              allow_reconnect=True, max_reconnect_attempts=-1,
                                              reconnect_time_wait=0.5)
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self._database_url, init=False)
                for channel in (KLINES_CHANNEL, *RISK_CHANNELS):
                    await self._conn.add_listener(channel, self._notified)
                await self._nc.publish(HINT_RISK_SUBJECT, b"")  # what changed while nobody listened
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self.interval)
        except Exception:
            await self._drop()
            raise

    async def _drop(self) -> None:
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
