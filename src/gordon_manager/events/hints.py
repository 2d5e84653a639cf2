"""Wake-up hints for the bots: PostgreSQL NOTIFY relayed to core NATS.

A bot used to LISTEN on PostgreSQL for new bars and risk changes. PostgreSQL signals every
listening backend of a database on every NOTIFY, whatever its channel, so with one listening backend
per bot each NOTIFY (the event outbox sends a few per decision) woke all N of them: PostgreSQL's CPU
grew with N² (bench/live_loop.py, 100 bots: ~170 transactions per decision, each a backend reading
the notification queue). The manager listens once (``db/listen.py``) and republishes:

* ``klines`` ("SYMBOL:INTERVAL", one per inserted (symbol, interval), then " PREV_TS [bar]" when the
  insert wrote one closed bar of it: migration 0030) → ``gordon.hints.klines.SYMBOL.INTERVAL``, the
  body being that bar part (empty when there is none; ``botrunner/hinted.py`` reads it);
* ``risk_halt_changed`` and ``breaker_state`` → ``gordon.hints.risk``.

Hints may be lost (core NATS, a reconnect): bots still poll for bars (``GORDON_BOT_POLL_S``) and
re-read the risk gate at every heartbeat; a bar a hint carries is taken only by a bot whose last bar
is the one before it. Bots without NATS keep LISTENing themselves. Every manager replica relays (a
duplicate hint costs a bot at most one query).
"""

from __future__ import annotations

import asyncio

import nats.errors

from gordon_manager.botrunner.contract import HINT_RISK_SUBJECT, klines_hint_subject, split_klines_notify
from gordon_manager.db.listen import Listen
from gordon_manager.events.notify_relay import NotifyRelay
from gordon_manager.observability import metrics

KLINES_CHANNEL = "klines"
RISK_CHANNELS = ("risk_halt_changed", "breaker_state")


class HintRelay(NotifyRelay):
    """Publish each new-bars or risk notification as a hint."""

    name = "hint-relay"
    channels = (KLINES_CHANNEL, *RISK_CHANNELS)

    def __init__(self, *, listen: Listen, nats_url: str, interval: float = 2.0) -> None:
        super().__init__(listen=listen, nats_url=nats_url, interval=interval)
        self.relayed = 0

    def _hint(self, channel: str, payload: str) -> tuple[str | None, bytes]:
        """The subject and body of a notification's hint (a klines body: the bar it carries, if any)."""
        if channel == KLINES_CHANNEL:
            symbol, interval, bar = split_klines_notify(payload)
            return klines_hint_subject(symbol, interval), bar.encode()
        return HINT_RISK_SUBJECT, b""

    def notified(self, channel: str, payload: str) -> None:
        subject, body = self._hint(channel, payload)
        if subject is None or self._nc is None or not self._nc.is_connected:
            metrics.HINTS.labels(outcome="dropped").inc()
            return
        asyncio.ensure_future(self._publish(subject, body))

    async def _publish(self, subject: str, body: bytes = b"") -> None:
        try:
            if self._nc is None:  # dropped since it was scheduled
                raise ConnectionError("NATS connection dropped")
            await self._nc.publish(subject, body)
        except (nats.errors.Error, OSError, AttributeError):
            metrics.HINTS.labels(outcome="dropped").inc()
            return
        self.relayed += 1
        metrics.HINTS.labels(outcome="relayed").inc()

    async def on_resumed(self) -> None:
        assert self._nc is not None  # NotifyRelay calls this with NATS connected
        await self._nc.publish(HINT_RISK_SUBJECT, b"")  # what changed while nobody relayed
