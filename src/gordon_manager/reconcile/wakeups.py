"""What wakes the reconciler besides its timer: NOTIFY of a config change, and runtime events."""

from __future__ import annotations

import logging

from gordon_manager.db.listen import Listen
from gordon_manager.loops import LoopService
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.runtimes.base import Runtime

logger = logging.getLogger(__name__)

CONFIG_CHANNEL = "bot_config_changed"


def wake_on_config_changes(listen: Listen, reconciler: Reconciler) -> None:
    """Wake the reconciler on NOTIFY bot_config_changed (on the process's LISTEN connection).

    A notification lost while LISTEN was down costs nothing but latency: the reconciler is
    level-triggered and its timer converges everything anyway; it is woken once LISTEN is back.
    """

    async def listening(_conn: object) -> None:
        reconciler.wake("notify")  # changes may have happened while nobody listened

    listen.subscribe("reconcile-listener", (CONFIG_CHANNEL,), lambda _channel, _payload: reconciler.wake("notify"),
                     on_listening=listening)


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
