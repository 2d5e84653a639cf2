"""Wiring of the events domain: hub, NOTIFY listener and relays (on the shared LISTEN), NATS consumer, monitor and
outbox retention."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
from starlette.websockets import WebSocket

from gordon_manager.context import AppContext
from gordon_manager.db.listen import listen
from gordon_manager.events import repo
from gordon_manager.events.hints import HintRelay
from gordon_manager.events.hub import Hub
from gordon_manager.events.intent_relay import IntentRelay
from gordon_manager.events.listener import NotifyListener
from gordon_manager.events.nats_consumer import NatsBreakerConsumer
from gordon_manager.events.protocol import heartbeat_frame
from gordon_manager.events.session import Session
from gordon_manager.loops import LoopService

logger = logging.getLogger(__name__)
HEARTBEAT_S = 15.0
PRUNE_BATCH = 5000


class HubMonitor(LoopService):
    """Every second: re-evaluate the hub's degraded reasons; every heartbeat interval: broadcast a heartbeat."""

    name = "events-monitor"

    def __init__(self, hub: Hub, service: EventsService) -> None:
        super().__init__(interval=1.0)
        self._hub = hub
        self._service = service
        self._last_heartbeat = time.monotonic()

    async def run_once(self) -> None:
        self._hub.evaluate_health()
        now = time.monotonic()
        if now - self._last_heartbeat >= self._service.heartbeat_s:
            self._last_heartbeat = now
            self._hub.broadcast(heartbeat_frame(last_id=self._hub.last_id))


class OutboxPruner(LoopService):
    """Deletes outbox rows older than the retention (clients resuming from before that get a resync)."""

    name = "events-outbox-retention"

    def __init__(self, pool: asyncpg.Pool, *, retention_s: float, active: Callable[[], bool] = lambda: True) -> None:
        super().__init__(interval=min(60.0, max(1.0, retention_s / 4)))
        self._pool = pool
        self.retention_s = retention_s
        self.active = active
        self.pruned = 0

    async def run_once(self) -> None:
        if not self.active():  # singleton work: only the leading replica prunes
            return
        total = 0
        while True:
            async with asyncio.timeout(30.0):
                async with self._pool.acquire() as conn:
                    deleted = await repo.prune_events(conn, older_than_s=self.retention_s, batch=PRUNE_BATCH)
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            self.pruned += total
            logger.info("pruned the event outbox", extra={"rows": total, "retention_s": self.retention_s})


class EventsService:
    """What /ws needs at run time (kept in ``ctx.services.events``)."""

    def __init__(self, ctx: AppContext, *, hub: Hub, listener: NotifyListener,
                 nats: NatsBreakerConsumer | None, pruner: OutboxPruner) -> None:
        self.ctx = ctx
        self.hub = hub
        self.listener = listener
        self.nats = nats
        self.pruner = pruner
        self.heartbeat_s = HEARTBEAT_S

    async def serve(self, websocket: WebSocket) -> None:
        """Run one WebSocket connection to its end."""
        settings = self.ctx.settings
        await Session(websocket, hub=self.hub, pool=self.ctx.pool, heartbeat_s=lambda: self.heartbeat_s,
                      idle_timeout_s=settings.ws_idle_timeout_s, replay_max_bytes=settings.ws_replay_max_bytes).run()

    async def close(self) -> None:
        self.hub.close()


async def start(ctx: AppContext) -> None:
    """Start the events domain: LISTEN (connected before serving), relays, NATS consumer, monitor, retention."""
    settings = ctx.settings
    nats_url = settings.bus_nats_url
    hub = Hub(health=ctx.health, queue_size=settings.ws_queue_size,
              batch_window_s=settings.ws_batch_window_ms / 1000.0, send_timeout_s=settings.ws_send_timeout_s,
              overflow_threshold=settings.ws_overflow_threshold, storm_per_s=settings.ws_reconnect_storm_per_s,
              breaker_source="nats" if nats_url else "notify")
    shared = listen(ctx)
    listener = NotifyListener(listen=shared, pool=ctx.pool, hub=hub, health=ctx.health, forward_breaker=not nats_url)
    ctx.supervisor.start(listener)
    consumer = None
    if nats_url:
        consumer = NatsBreakerConsumer(url=nats_url, hub=hub, health=ctx.health)
        ctx.health.set_check("nats", configured=True, connected=False, breakerStateSource="nats")
        ctx.supervisor.start(consumer)
        ctx.supervisor.start(HintRelay(listen=shared, nats_url=nats_url))
        ctx.supervisor.start(IntentRelay(listen=shared, nats_url=nats_url))
    else:
        ctx.health.set_check("nats", configured=False, breakerStateSource="notify",
                             detail="GORDON_BUS_NATS_URL is unset: breaker_state deltas come from Postgres NOTIFY")
    await shared.sync()  # listening before serving: a client connecting right after start-up misses nothing
    pruner = OutboxPruner(ctx.pool, retention_s=settings.events_retention_s, active=ctx.leads)
    service = EventsService(ctx, hub=hub, listener=listener, nats=consumer, pruner=pruner)
    ctx.supervisor.start(HubMonitor(hub, service))
    ctx.supervisor.start(pruner)
    ctx.services.events = service
