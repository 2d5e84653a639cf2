"""The intent relay: committed order intents to JetStream at commit time, independently of the bot.

A bot publishes each intent right after the transaction that recorded it commits. Under load (many
bots deciding on the same bar, a few cores) the bot waits its turn for the CPU between its commit
and its publish. The relay takes that wait out of the path: the outbox row's trigger NOTIFYs the
message (migration 0017), PostgreSQL delivers it when the transaction commits, and the relay (on the
process's one LISTEN connection, ``db/listen.py``) publishes it with ``Nats-Msg-Id`` = clientOrderId.

The bot still publishes and marks its outbox: JetStream stores whichever copy comes first and
acknowledges the other as a duplicate, so the relay can only make an intent earlier, never doubled,
never lost (a relay that is down, slow or disconnected changes nothing but latency). Per bot the
relay publishes in commit order, one after the other, so the stream keeps each bot's order; bots
are published concurrently (one short-lived task per bot with something to send), so a burst of
many bots deciding on one bar does not queue behind one acknowledgement at a time.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
import orjson
from nats.js import JetStreamContext

from gordon_manager.db.listen import Listen
from gordon_manager.events.notify_relay import NotifyRelay
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

CHANNEL = "order_intents"
QUEUE_MAX = 10_000  # beyond this the relay drops (the bots publish anyway)
_NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError, asyncio.TimeoutError)


class IntentRelay(NotifyRelay):
    """Publish each announced order intent to JetStream, in order per bot."""

    name = "intent-relay"
    channels = (CHANNEL,)

    def __init__(self, *, listen: Listen, nats_url: str, interval: float = 2.0, timeout_s: float = 2.0) -> None:
        super().__init__(listen=listen, nats_url=nats_url, interval=interval)
        self._timeout_s = timeout_s
        self._js: JetStreamContext | None = None
        self._pending: dict[int, list[dict]] = {}  # bot id -> notes waiting, in commit order
        self._senders: dict[int, asyncio.Task] = {}
        self._queued = 0

    def notified(self, channel: str, payload: str) -> None:
        if self._js is None or self._queued >= QUEUE_MAX:
            metrics.INTENTS_RELAYED.labels(outcome="dropped").inc()
            return
        note = orjson.loads(payload)
        if "payload" not in note:  # too large for NOTIFY: the bot's own publish carries it
            metrics.INTENTS_RELAYED.labels(outcome="skipped").inc()
            return
        bot_id = note["botId"]
        self._pending.setdefault(bot_id, []).append(note)
        self._queued += 1
        if bot_id not in self._senders:
            self._senders[bot_id] = asyncio.create_task(self._send(bot_id), name=f"intent-relay-{bot_id}")

    async def _send(self, bot_id: int) -> None:
        """Publish this bot's notes in order until none is left (then the task ends).

        After a failure the bot's remaining notes are dropped: publishing a later intent before an
        earlier one would change the order the executor sees; the bot's own publishes keep it.
        """
        try:
            while self._pending.get(bot_id):
                note = self._pending[bot_id].pop(0)
                self._queued -= 1
                if not await self._publish(note):
                    dropped = self._pending.pop(bot_id, [])
                    self._queued -= len(dropped)
                    metrics.INTENTS_RELAYED.labels(outcome="dropped").inc(len(dropped))
        finally:
            self._senders.pop(bot_id, None)
            if not self._pending.get(bot_id):
                self._pending.pop(bot_id, None)

    async def _publish(self, note: dict) -> bool:
        if self._js is None:
            metrics.INTENTS_RELAYED.labels(outcome="dropped").inc()
            return False
        try:
            ack = await self._js.publish(note["subject"], orjson.dumps(note["payload"]), timeout=self._timeout_s,
                                         headers={"Nats-Msg-Id": note["clientOrderId"]})
        except _NATS_ERRORS as exc:
            metrics.INTENTS_RELAYED.labels(outcome="dropped").inc()
            logger.debug("intent not relayed", extra={"clientOrderId": note["clientOrderId"],
                                                      "error": f"{type(exc).__name__}: {exc}"})
            return False
        metrics.INTENTS_RELAYED.labels(outcome="duplicate" if ack.duplicate else "published").inc()
        return True

    async def on_nats(self) -> None:
        assert self._nc is not None  # called once NATS is connected
        self._js = self._nc.jetstream(timeout=self._timeout_s)

    async def on_drop(self) -> None:
        senders = list(self._senders.values())
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        self._pending.clear()
        self._senders.clear()
        self._queued = 0
        self._js = None
