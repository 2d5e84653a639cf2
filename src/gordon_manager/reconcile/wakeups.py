"""What wakes the reconciler besides its timer: NOTIFY of a config change, and runtime events."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from gordon_manager.db.connect import connect
from gordon_manager.loops import LoopService
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.runtimes.base import Runtime

logger = logging.getLogger(__name__)

CONFIG_CHANNEL = "bot_config_changed"


class ConfigListener(LoopService):
    """LISTEN bot_config_changed on a dedicated connection; reconnect when it drops.

    A notification lost while disconnected costs nothing but latency: the reconciler is
    level-triggered and its timer converges everything anyway.
    """

    name = "reconcile-listener"

    def __init__(self, *, url: str, reconciler: Reconciler, interval: float = 2.0) -> None:
        super().__init__(interval=interval)
        self._url = url
        self._reconciler = reconciler
        self._conn: asyncpg.Connection | None = None

    def _notified(self, *_args: object) -> None:
        self._reconciler.wake("notify")

    async def run_once(self) -> None:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await connect(self._url, init=False)
                await self._conn.add_listener(CONFIG_CHANNEL, self._notified)
                self._reconciler.wake("notify")  # changes may have happened while we were away
            await asyncio.wait_for(self._conn.fetchval("SELECT 1"), timeout=self.interval)
        except Exception:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            raise

    async def teardown(self) -> None:
        if self._conn is not None:
            self._conn.terminate()


class RuntimeEventWatcher(LoopService):
    """Wake the reconciler as soon as the runtime reports a workload died (no waiting for the timer)."""

    name = "runtime-events"
    warn_overrun = False

    def __init__(self, *, runtime: Runtime, reconciler: Reconciler, interval: float = 1.0) -> None:
        super().__init__(interval=interval)
        self._runtime = runtime
        self._reconciler = reconciler

    async def run_once(self) -> None:
        events = aiter(self._runtime.events())
        while not self.stopping:
            try:
                event = await self.until_stopped(anext(events))
            except StopAsyncIteration:  # the runtime closed its stream; run_once is called again
                return
            if event is None:
                return
            if event.kind in ("died", "stopped", "removed"):
                logger.info("workload event", extra={"bot_id": event.bot_id, "event": event.kind})
                self._reconciler.wake("runtime_event")


class LeaderWatcher(LoopService):
    """Run a pass right after this replica becomes leader."""

    name = "leader-watch"
    warn_overrun = False

    def __init__(self, *, reconciler: Reconciler) -> None:
        super().__init__(interval=1.0)
        self._reconciler = reconciler

    async def run_once(self) -> None:
        leader = self._reconciler.leader
        if await self.until_stopped(leader.changed.wait()) is None:
            return
        leader.changed.clear()
        if leader.is_leader:
            self._reconciler.wake("leader")
