"""The reconcile loop: load the fleet (one query), observe the runtime (one call), decide, act, record."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.reconcile import repo
from gordon_manager.reconcile.leader import LeaderElector
from gordon_manager.reconcile.policy import Decision, Thresholds, decide
from gordon_manager.runtimes.base import (
    Runtime,
    RuntimeConfigError,
    RuntimeFailure,
    WorkloadSpec,
)

logger = logging.getLogger(__name__)

SpecBuilder = Callable[[Any], WorkloadSpec]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler(LoopService):
    """Level-triggered and idempotent: every pass converges every bot, whatever woke it."""

    name = "reconciler"

    def __init__(self, *, pool: asyncpg.Pool, runtime: Runtime, leader: LeaderElector, spec_builder: SpecBuilder,
                 thresholds: Thresholds, interval: float, clock: Callable[[], datetime] = utcnow,
                 concurrency: int = 16) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.runtime = runtime
        self.leader = leader
        self.spec_builder = spec_builder
        self.thresholds = thresholds
        self.clock = clock
        self._semaphore = asyncio.Semaphore(concurrency)
        self._trigger = "timer"
        self.runtime_calls = 0

    def wake(self, trigger: str = "notify") -> None:
        """Run a pass now; ``trigger`` labels the tick metric."""
        self._trigger = trigger
        super().wake()

    async def run_once(self) -> None:
        if not self.leader.is_leader:
            return
        trigger, self._trigger = self._trigger, "timer"
        metrics.RECONCILE_TICKS.labels(trigger=trigger).inc()
        started = time.perf_counter()
        try:
            await self.reconcile()
        finally:
            metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)

    async def reconcile(self) -> Counter[str]:
        """One pass; returns the actions taken by kind."""
        async with self.pool.acquire() as conn:
            fleet = await repo.load_fleet(conn)
        try:
            observed = await self.runtime.observe()
        except RuntimeFailure as exc:
            self._runtime_error("observe", exc)
            return Counter()
        now = self.clock()
        planned: list[tuple[Any, Decision]] = []
        known: set[int] = set()
        for row in fleet:
            known.add(row["id"])
            obs = observed.get(row["id"])
            decision = decide(row, row, obs, now, self.thresholds)
            if (decision.action == "none" and obs is not None and obs.running and obs.address
                    and obs.address != row.get("metrics_host")):
                # A container restarted outside a start (swarm rescheduled its task) has a new address.
                decision.status["metrics_host"] = obs.address
            if decision.action != "none" or decision.status or decision.event or not row["has_status"]:
                planned.append((row, decision))
        orphans = [bot_id for bot_id in observed if bot_id not in known]
        actions: Counter[str] = Counter()
        if planned or orphans:
            await asyncio.gather(*(self._act(row, d, now, actions) for row, d in planned if d.action != "none"),
                                 *(self._remove_orphan(bot_id, actions) for bot_id in orphans))
            await self._record(planned, now)
        self._publish_states(fleet, planned)
        return actions

    async def _act(self, row: Any, d: Decision, now: datetime, actions: Counter[str]) -> None:
        if not self.leader.is_leader:  # fencing: a leader whose lease lapsed must not act
            d.action = "none"
            return
        bot_id = row["id"]
        async with self._semaphore:
            self.runtime_calls += 1
            try:
                if d.action == "start":
                    spec = self.spec_builder(row)
                    obs = await self.runtime.start(spec)
                    d.status.update(observed_state=row["desired_state"], workload_id=obs.workload_id,
                                    observed_version=row["spec_version"], running_since=now, next_retry_at=None,
                                    runtime=self.runtime.kind, metrics_port=_metrics_port(spec),
                                    metrics_host=obs.address)
                elif d.action == "stop":
                    await self.runtime.stop(bot_id)
                    if d.status.get("observed_state") != "quarantined" and not row["quarantined"]:
                        d.status.update(observed_state="stopped", running_since=None)
                elif d.action == "remove":
                    await self.runtime.remove(bot_id)
                    d.action = "finalize_delete"
                    d.status.update(observed_state="removed", workload_id=None, running_since=None)
                elif d.action == "pause":
                    await self.runtime.signal(bot_id, "SIGUSR1")
                    d.status.update(observed_state="paused")
                elif d.action == "resume":
                    await self.runtime.signal(bot_id, "SIGUSR2")
                    d.status.update(observed_state="running")
                if d.action != "finalize_delete":
                    actions[d.action] += 1
                    metrics.RECONCILE_ACTIONS.labels(action=d.action).inc()
                else:
                    actions["remove"] += 1
                    metrics.RECONCILE_ACTIONS.labels(action="remove").inc()
            except RuntimeConfigError as exc:
                self._runtime_error(d.action, exc)
                d.status.update(observed_state="error", observed_version=row["spec_version"], last_error=str(exc),
                                last_error_at=now, next_retry_at=None)
                d.event = ("config_error", "error", str(exc), {"action": d.action})
                d.action = "none"
            except RuntimeFailure as exc:
                self._runtime_error(d.action, exc)
                retry = self.thresholds.backoff_base_s
                d.status.update(last_error=f"{d.action} failed: {exc}", last_error_at=now,
                                next_retry_at=now + timedelta(seconds=retry),
                                observed_state="backoff" if d.action == "start" else row["observed_state"])
                d.action = "none"

    async def _remove_orphan(self, bot_id: int, actions: Counter[str]) -> None:
        if not self.leader.is_leader:
            return
        try:
            await self.runtime.remove(bot_id)
            actions["remove_orphan"] += 1
            metrics.RECONCILE_ACTIONS.labels(action="remove_orphan").inc()
        except RuntimeFailure as exc:
            self._runtime_error("remove_orphan", exc)

    async def _record(self, planned: list[tuple[Any, Decision]], now: datetime) -> None:
        statuses, events, deletes = [], [], []
        for row, d in planned:
            if d.status or not row["has_status"]:
                statuses.append({"bot_id": row["id"], **{c: row[c] for c in repo.STATUS_COLUMNS}, **d.status})
            if d.event:
                kind, level, message, data = d.event
                events.append((row["id"], kind, level, message, data))
                if kind == "quarantined":
                    metrics.BOT_QUARANTINES.inc()
                    logger.warning("bot quarantined", extra={"bot_id": row["id"], "reason": message})
            if d.action == "finalize_delete":
                deletes.append(row["id"])
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.write_statuses(conn, rows=statuses)
            await repo.insert_events(conn, events=events)
            for bot_id in deletes:
                await repo.soft_delete(conn, bot_id=bot_id)

    def _publish_states(self, fleet: list[Any], planned: list[tuple[Any, Decision]]) -> None:
        changed = {row["id"]: d.status.get("observed_state") for row, d in planned}
        counts = Counter(changed.get(row["id"]) or row["observed_state"] for row in fleet)
        for state in ("pending", "starting", "running", "paused", "stopping", "stopped", "crashed", "backoff",
                      "quarantined", "error", "removed"):
            metrics.BOT_STATE.labels(state=state).set(counts.get(state, 0))

    def _runtime_error(self, operation: str, exc: RuntimeFailure) -> None:
        kind = type(exc).__name__
        if self.runtime.kind in ("docker", "swarm"):
            metrics.DOCKER_SOCKET_ERRORS.labels(kind=kind).inc()
        metrics.ERRORS.labels(component="reconciler", kind=kind).inc()
        logger.warning("runtime call failed", extra={"operation": operation, "error": str(exc), "kind": kind})


def _metrics_port(spec: WorkloadSpec) -> int | None:
    value = spec.env.get("GORDON_BOT_METRICS_PORT")
    return int(value) if value and value.isdigit() else None

