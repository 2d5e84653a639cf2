"""The ``manager-risk`` durable pull consumer of ``risk.events.>`` (JetStream): breaker deltas to the hub.

Stream and consumer are created when missing. Each message is validated as a BreakerEvent, handed to
the hub (no SQL round trip), then acknowledged explicitly; a failure to hand it over naks it for
redelivery, an invalid one is terminated. nats-py reconnects by itself; the durable consumer keeps
its position in the stream, so a NATS restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, DeliverPolicy, StorageType
from pydantic import ValidationError

from gordon_manager.events.breaker import BreakerEvent
from gordon_manager.events.hub import Hub
from gordon_manager.events.protocol import BREAKER_CHANNEL, breaker_item
from gordon_manager.health.state import HealthState
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

STREAM = "RISK_EVENTS"
SUBJECT = "risk.events.>"
DURABLE = "manager-risk"
HEALTH_SOURCE = "nats"
FETCH_BATCH = 256
_NATS_ERRORS = (nats.errors.Error, OSError, asyncio.TimeoutError)


class NatsBreakerConsumer(LoopService):
    """Pulls breaker events and forwards them; each iteration is one fetch (it re-wakes itself)."""

    name = "events-nats"

    def __init__(self, *, url: str, hub: Hub, health: HealthState, fetch_timeout_s: float = 1.0,
                 ack_wait_s: float = 10.0, connect_timeout_s: float = 2.0) -> None:
        super().__init__(interval=fetch_timeout_s + 4.0)
        self._url = url
        self._hub = hub
        self._health = health
        self._fetch_timeout_s = fetch_timeout_s
        self._ack_wait_s = ack_wait_s
        self._connect_timeout_s = connect_timeout_s
        self._nc: nats.NATS | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stream: str | None = None
        self._recent: OrderedDict[int, None] = OrderedDict()
        self.forwarded = 0
        self.rejected = 0
        self._error: str | None = None

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def run_once(self) -> None:
        if self._sub is None and not await self.try_connect():
            return
        assert self._sub is not None  # bound by try_connect
        try:
            messages = await self._sub.fetch(batch=FETCH_BATCH, timeout=self._fetch_timeout_s)
        except TimeoutError:
            messages = []
        except _NATS_ERRORS as exc:
            self._note_error(f"fetch failed: {type(exc).__name__}: {exc}")
            return
        for message in messages:
            await self._handle(message)
        self.wake()  # pull again at once; the fetch itself is what waits

    async def try_connect(self) -> bool:
        """Connect, ensure stream and durable consumer, bind the pull subscription."""
        try:
            if self._nc is None:
                # With unlimited reconnects nats-py also retries the *first* connect forever; bound it
                # so that a NATS that is down at start-up shows in /healthz and is retried by this loop.
                async with asyncio.timeout(self._connect_timeout_s):
                    self._nc = await nats.connect(
                        self._url, name="gordon-manager", connect_timeout=self._connect_timeout_s,
                        allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                        disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected,
                        error_cb=self._on_error)
            js = self._nc.jetstream()
            self._stream = await self._ensure_stream(js)
            await self._ensure_consumer(js, self._stream)
            self._sub = await js.pull_subscribe_bind(durable=DURABLE, stream=self._stream)
        except (*_NATS_ERRORS, nats.js.errors.Error) as exc:
            if self._nc is not None and not self._nc.is_connected:
                await self._close_connection()
            self._note_error(f"cannot consume {SUBJECT}: {type(exc).__name__}: {exc}")
            return False
        self._error = None
        self._health.clear_degraded("peer_down", HEALTH_SOURCE)
        self._publish_check()
        logger.info("consuming breaker events", extra={"stream": self._stream, "consumer": DURABLE})
        return True

    async def _ensure_stream(self, js) -> str:
        try:
            return await js.find_stream_name_by_subject(SUBJECT)
        except nats.js.errors.NotFoundError:
            await js.add_stream(name=STREAM, subjects=[SUBJECT], storage=StorageType.FILE)
            logger.info("created JetStream stream", extra={"stream": STREAM, "subjects": SUBJECT})
            return STREAM

    async def _ensure_consumer(self, js, stream: str) -> None:
        try:
            await js.consumer_info(stream, DURABLE)
        except nats.js.errors.NotFoundError:
            # DeliverPolicy.NEW: history before the consumer existed is covered by the DB snapshot.
            await js.add_consumer(stream, durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT,
                                  deliver_policy=DeliverPolicy.NEW, ack_wait=self._ack_wait_s,
                                  filter_subject=SUBJECT, max_ack_pending=10_000)
            logger.info("created JetStream consumer", extra={"stream": stream, "consumer": DURABLE})

    async def _handle(self, message) -> None:
        try:
            event = BreakerEvent.model_validate_json(message.data)
        except ValidationError as exc:
            self.rejected += 1
            metrics.ERRORS.labels(component="nats_consumer", kind="bad_event").inc()
            logger.warning("terminating an invalid breaker event",
                           extra={"subject": message.subject, "errors": exc.error_count()})
            await message.term()
            return
        seq = message.metadata.sequence.stream
        try:
            if seq not in self._recent:  # a redelivery of something already forwarded
                self._hub.publish(BREAKER_CHANNEL, breaker_item(seq, event.wire()))
                self._recent[seq] = None
                if len(self._recent) > 10_000:
                    self._recent.popitem(last=False)
                self.forwarded += 1
        except Exception:
            metrics.ERRORS.labels(component="nats_consumer", kind="handoff").inc()
            logger.exception("could not hand a breaker event to the hub; it will be redelivered")
            await message.nak(delay=1.0)
            return
        await message.ack()

    def _note_error(self, error: str) -> None:
        self._error = error
        logger.warning("nats consumer problem", extra={"error": error})
        self._health.set_degraded("peer_down", HEALTH_SOURCE, error)
        self._publish_check()

    def _publish_check(self) -> None:
        self._health.set_check("nats", configured=True, connected=self.connected, stream=self._stream,
                               consumer=DURABLE, subject=SUBJECT, breakerStateSource="nats",
                               forwarded=self.forwarded, rejected=self.rejected, error=self._error)

    async def _on_disconnected(self) -> None:
        self._health.set_degraded("peer_down", HEALTH_SOURCE, "disconnected from NATS; reconnecting")
        self._publish_check()

    async def _on_reconnected(self) -> None:
        self._error = None
        self._health.clear_degraded("peer_down", HEALTH_SOURCE)
        self._publish_check()
        self.wake()

    async def _on_error(self, exc: Exception) -> None:
        # Called on every failed reconnect attempt; the state is in /healthz, so keep the log quiet.
        logger.debug("nats client error", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _close_connection(self) -> None:
        nc, self._nc, self._sub = self._nc, None, None
        if nc is not None:
            try:
                async with asyncio.timeout(2.0):
                    await nc.close()
            except Exception:  # closing a broken client is best effort
                logger.debug("nats close failed", exc_info=True)

    async def teardown(self) -> None:
        await self._close_connection()
