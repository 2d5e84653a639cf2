"""The bot's side of NATS: intents out (JetStream, acknowledged, de-duplicated), reports in, breakers.

* ``publish``: each committed intent with ``Nats-Msg-Id`` = its clientOrderId, awaiting the
  JetStream ack; it stops at the first failure so intents leave in commit order, and the caller
  retries the rest later (a duplicate the server already stored is acknowledged as such).
* Reports: the durable pull consumer ``bot-<id>`` on ``orders.fills.<id>``; a background task
  fetches them into ``reports`` and the bot acknowledges each one only after the transaction that
  booked it committed, so a crash redelivers it (and the fill id makes the redelivery a no-op).
* Breakers: a plain subscription to ``risk.events.>`` hands each BreakerEvent to ``on_breaker``
  (the database stays the baseline: the bot re-reads it with every batch).
* Hints (the manager relays them from PostgreSQL NOTIFY, see ``events/hints.py``): new bars of the
  bot's market call ``on_bars`` with the hint's body (the bar, when it carries one:
  ``botrunner/hinted.py``), a risk change calls ``on_risk``.

Streams and the consumer are created when missing, with the configuration in ``contract``.
nats-py reconnects by itself; a bot whose NATS is down keeps deciding, and its intents wait in the
outbox until the bus is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, DeliverPolicy, StorageType
from pydantic import ValidationError

from gordon_manager.botrunner import contract
from gordon_manager.botrunner.commit import Outgoing
from gordon_manager.events.breaker import BreakerEvent

logger = logging.getLogger(__name__)

NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError, asyncio.TimeoutError)
RISK_SUBJECT = "risk.events.>"
# One report per pull: with a larger batch, nats-py (2.16) can take the server's late "request
# timeout" of an idle pull as the answer to the next one, then wait out a whole lingering pull for
# the rest of the batch: reports reached the bot up to ~1 s late (bench/live_loop.py measured it).
FETCH_BATCH = 1


class Bus:
    """One NATS connection of one bot."""

    def __init__(self, *, url: str, bot_id: int, live: bool, on_report: Callable[[], None],
                 on_breaker: Callable[[BreakerEvent], None], bars_subject: str | None = None,
                 on_bars: Callable[[bytes], None] = lambda body: None, on_risk: Callable[[], None] = lambda: None,
                 on_error: Callable[[str], None] = lambda kind: None, timeout_s: float = 2.0) -> None:
        self.url = url
        self.bot_id = bot_id
        self.live = live
        self.timeout_s = timeout_s
        self.reports: asyncio.Queue[Msg] = asyncio.Queue()
        self._on_report = on_report
        self._on_breaker = on_breaker
        self._bars_subject = bars_subject
        self._on_bars = on_bars
        self._on_risk = on_risk
        self._count_error = on_error  # errors survived, by kind (gordon_bot_errors_total)
        self._nc: nats.NATS | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._puller: asyncio.Task[None] | None = None
        self.ready = False
        self.duplicates = 0

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self) -> bool:
        """Connect and set up streams, consumer and subscriptions; False (retry later) when NATS is down."""
        try:
            if self._nc is None:
                # Unlimited reconnects make nats-py retry the first connect forever: bound it.
                async with asyncio.timeout(self.timeout_s * 2):
                    self._nc = await nats.connect(self.url, name=f"gordon-bot-{self.bot_id}",
                                                  connect_timeout=self.timeout_s, allow_reconnect=True,
                                                  max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                                  error_cb=self._on_error)
                await self._nc.subscribe(RISK_SUBJECT, cb=self._breaker_message)
                await self._nc.subscribe(contract.HINT_RISK_SUBJECT, cb=self._risk_hint)
                if self._bars_subject is not None:
                    await self._nc.subscribe(self._bars_subject, cb=self._bars_hint)
            if self.live and self._sub is None:
                self._js = self._nc.jetstream(timeout=self.timeout_s)
                await self._ensure_stream(contract.INTENTS_STREAM, contract.INTENTS_SUBJECTS)
                stream = await self._ensure_stream(contract.REPORTS_STREAM, contract.REPORTS_SUBJECTS)
                durable = contract.consumer_name(self.bot_id)
                try:
                    await self._js.consumer_info(stream, durable)
                except nats.js.errors.NotFoundError:
                    await self._js.add_consumer(
                        stream, durable_name=durable, filter_subject=contract.reports_subject(self.bot_id),
                        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, ack_wait=30,
                        max_ack_pending=1000, inactive_threshold=contract.MAX_AGE_S)
                self._sub = await self._js.pull_subscribe_bind(durable=durable, stream=stream)
                self._puller = asyncio.create_task(self._pull(), name="bot-reports")
        except NATS_ERRORS as exc:
            self._count_error("nats_connect")
            logger.warning("NATS not ready", extra={"error": f"{type(exc).__name__}: {exc}"})
            if self._nc is not None and not self._nc.is_connected:
                await self.close()
            return False
        self.ready = True
        return True

    async def _ensure_stream(self, name: str, subjects: str) -> str:
        assert self._js is not None  # set by connect() before the streams are ensured
        try:
            return await self._js.find_stream_name_by_subject(subjects)
        except nats.js.errors.NotFoundError:
            try:
                await self._js.add_stream(name=name, subjects=[subjects], storage=StorageType.FILE,
                                          duplicate_window=contract.DEDUP_WINDOW_S, max_age=contract.MAX_AGE_S)
            except nats.js.errors.BadRequestError:  # created meanwhile by another bot or the executor
                pass
            return name

    async def publish(self, items: list[Outgoing]) -> list[int]:
        """Publish in order until one fails; returns the ids JetStream acknowledged."""
        if not self.ready or self._js is None:
            return []
        acked: list[int] = []
        for item in items:
            try:
                ack = await self._js.publish(item.subject, item.payload, timeout=self.timeout_s,
                                             headers={"Nats-Msg-Id": item.client_order_id})
            except NATS_ERRORS as exc:
                self._count_error("intent_publish")
                logger.warning("intent not published yet", extra={"clientOrderId": item.client_order_id,
                                                                  "error": f"{type(exc).__name__}: {exc}"})
                break
            if ack.duplicate:
                self.duplicates += 1
            acked.append(item.id)
        return acked

    async def _pull(self) -> None:
        sub = self._sub  # bound before this task starts; close() cancels it before unbinding
        assert sub is not None
        while self._sub is sub:  # unbound by close(): a cancel lost inside nats-py (cancel_and_wait) still ends it
            try:
                messages = await sub.fetch(batch=FETCH_BATCH, timeout=1.0)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except NATS_ERRORS as exc:
                self._count_error("report_fetch")
                logger.debug("report fetch failed", extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                self.reports.put_nowait(message)
            self._on_report()

    async def _breaker_message(self, message: Msg) -> None:
        try:
            event = BreakerEvent.model_validate_json(message.data)
        except ValidationError:
            self._count_error("bad_breaker_event")
            logger.warning("ignoring an invalid breaker event", extra={"subject": message.subject})
            return
        self._on_breaker(event)

    async def _bars_hint(self, message: Msg) -> None:
        self._on_bars(message.data)

    async def _risk_hint(self, _message: Msg) -> None:
        self._on_risk()

    async def _on_error(self, exc: Exception) -> None:
        logger.debug("nats client error", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def close(self) -> None:
        puller, self._puller = self._puller, None
        nc, self._nc, self._sub, self._js = self._nc, None, None, None
        if puller is not None:
            await cancel_and_wait(puller)
        self.ready = False
        if nc is not None:
            try:
                async with asyncio.timeout(2.0):
                    await nc.close()
            except Exception:  # closing a broken client is best effort
                logger.debug("nats close failed", exc_info=True)


async def cancel_and_wait(task: asyncio.Task[Any], *, wait_s: float = 0.1, attempts: int = 50) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again while a cancel was swallowed.

    A single ``cancel(); await task`` can wait forever: nats-py's ``next_msg`` (under every
    ``fetch``) awaits ``asyncio.wait_for``, which in Python 3.11 returns the message instead of
    raising CancelledError when the message arrives in the same loop iteration as the cancel
    (python/cpython#86296); the cancel is lost and the fetch loop goes on. Bots stopped under load
    hung in ``close()`` that way until their supervisor killed them. Bounded: after ``attempts``
    tries (5 s) the task is left behind, logged.
    """
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=wait_s)
    if not task.done():
        logger.warning("a task did not end when cancelled", extra={"task": task.get_name()})
        return
    if not task.cancelled() and task.exception() is not None:
        logger.debug("task ended with an error", exc_info=task.exception())
