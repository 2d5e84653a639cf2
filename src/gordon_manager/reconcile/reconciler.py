"""The reconcile loop: load the fleet (one query), observe the runtime (one call), decide, act, record.

Controller habits:
* **A work queue per bot.** A pass decides for every bot, records the status-only changes at once,
  and hands each runtime call (start, stop, remove, signal) to a worker of that bot, which records
  its own outcome when the call returns. The pass waits for its workers at most ``pass_budget_s``;
  a slow call (a 10 s stop) delays only its own bot: later passes skip a bot whose worker is still
  busy, and look at it again once it is done.
* **Generation-checked writes.** Every status write carries the row's ``generation`` as the pass
  read it (``repo.write_statuses``); a row that moved on meanwhile (the operator cleared a
  quarantine, a worker recorded its outcome) is not overwritten, and its event is not written
  either: the bot is requeued, with a per-bot delay doubling from ``REQUEUE_BASE_S`` to
  ``REQUEUE_MAX_S``, and decided again from the row as it is then. ``spec_version`` /
  ``observed_version`` are the spec's generation and the generation last acted on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine
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
REQUEUE_BASE_S = 0.05
REQUEUE_MAX_S = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler(LoopService):
    """Level-triggered and idempotent: every pass converges every bot, whatever woke it."""

    name = "reconciler"

    def __init__(self, *, pool: asyncpg.Pool, runtime: Runtime, leader: LeaderElector, spec_builder: SpecBuilder,
                 thresholds: Thresholds, interval: float, clock: Callable[[], datetime] = utcnow,
                 concurrency: int = 16, pass_budget_s: float = 5.0) -> None:
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
        self.pass_budget_s = pass_budget_s
        self._workers: dict[int, asyncio.Task[None]] = {}  # bot id -> its runtime call in flight
        self._conflicts: dict[int, int] = {}  # bot id -> generation conflicts in a row (requeue delay)
        self._finished: dict[int, int] = {}  # bot id -> workers finished (a pass skips rows older than the last)
        self._requeue: asyncio.TimerHandle | None = None

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
        """One pass; returns the actions taken by kind (those whose call returned within the budget)."""
        finished = dict(self._finished)  # a worker finishing after this point makes its row stale
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
            if row["id"] in self._workers:  # its worker is still acting: decided again once it is done
                continue
            if self._finished.get(row["id"], 0) != finished.get(row["id"], 0):
                # its worker finished after the fleet was read: this row predates what it did
                self._requeue_bot(row["id"], conflict=False)
                continue
            obs = observed.get(row["id"])
            decision = decide(row, row, obs, now, self.thresholds)
            if (decision.action == "none" and obs is not None and obs.running and obs.address
                    and obs.address != row.get("metrics_host")):
                # A container restarted outside a start (swarm rescheduled its task) has a new address.
                decision.status["metrics_host"] = obs.address
            if decision.action != "none" or decision.status or decision.event or not row["has_status"]:
                planned.append((row, decision))
        orphans = [bot_id for bot_id in observed if bot_id not in known and bot_id not in self._workers
                   and self._finished.get(bot_id, 0) == finished.get(bot_id, 0)]
        actions: Counter[str] = Counter()
        work = [(row, d) for row, d in planned if d.action not in ("none", "finalize_delete")]
        for _row, d in planned:
            if d.action == "finalize_delete":  # no workload left: the row is soft-deleted with the record
                if not self.leader.is_leader:  # fencing, as for runtime calls
                    d.action = "none"
                    continue
                actions["remove"] += 1
                metrics.RECONCILE_ACTIONS.labels(action="remove").inc()
        await self._record([(row, d) for row, d in planned if d.action in ("none", "finalize_delete")])
        started = [self._spawn(row["id"], self._work(row, d, now, actions)) for row, d in work]
        started += [self._spawn(bot_id, self._remove_orphan(bot_id, actions)) for bot_id in orphans]
        if started:
            await asyncio.wait(started, timeout=self.pass_budget_s)
        self._publish_states(fleet, planned)
        return actions

    def _spawn(self, bot_id: int, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._workers[bot_id] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._workers.get(bot_id) is t:
                del self._workers[bot_id]
            self._finished[bot_id] = self._finished.get(bot_id, 0) + 1
            if not t.cancelled() and t.exception() is not None:
                logger.error("reconcile worker failed", exc_info=t.exception(), extra={"bot_id": bot_id})
                self._requeue_bot(bot_id)

        task.add_done_callback(done)
        return task

    async def _work(self, row: Any, d: Decision, now: datetime, actions: Counter[str]) -> None:
        """One bot's runtime call, then its outcome recorded (the bot's worker)."""
        await self._act(row, d, now, actions)
        await self._record([(row, d)])

    def _requeue_bot(self, bot_id: int, *, conflict: bool = True) -> None:
        """Decide this bot again soon: a pass after a per-bot delay that doubles while it keeps conflicting."""
        n = self._conflicts.get(bot_id, 0) + 1 if conflict else max(self._conflicts.get(bot_id, 0), 1)
        if conflict:
            self._conflicts[bot_id] = n
            metrics.RECONCILE_REQUEUES.inc()
        delay = min(REQUEUE_BASE_S * 2 ** (n - 1), REQUEUE_MAX_S)
        loop = asyncio.get_running_loop()
        if self._requeue is None or self._requeue.when() > loop.time() + delay:
            if self._requeue is not None:
                self._requeue.cancel()
            self._requeue = loop.call_later(delay, self._requeued)

    def _requeued(self) -> None:
        self._requeue = None
        self.wake("requeue")

    async def teardown(self) -> None:
        """Stopping: bot workers get ``pass_budget_s`` to finish their call; the rest is cancelled (the
        next leader decides those bots again from what it observes)."""
        if self._requeue is not None:
            self._requeue.cancel()
            self._requeue = None
        workers = list(self._workers.values())
        if workers:
            _done, pending = await asyncio.wait(workers, timeout=self.pass_budget_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for every bot worker in flight (stopping, and tests)."""
        while self._workers:
            await asyncio.wait(list(self._workers.values()))

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

    async def _record(self, planned: list[tuple[Any, Decision]]) -> None:
        """Write the status changes, events and deletes of these bots, each only if its row did not move on."""
        statuses, events, deletes = [], [], []
        for row, d in planned:
            if d.status or not row["has_status"]:
                statuses.append({"bot_id": row["id"], "generation": row["generation"],
                                 **{c: row[c] for c in repo.STATUS_COLUMNS}, **d.status})
            if d.event:
                events.append((row["id"], d.event))
            if d.action == "finalize_delete":
                deletes.append(row["id"])
        if not (statuses or events or deletes):
            return
        async with self.pool.acquire() as conn, conn.transaction():
            written = await repo.write_statuses(conn, rows=statuses)
            stale = {r["bot_id"] for r in statuses} - written
            await repo.insert_events(conn, events=[(bot_id, *event) for bot_id, event in events
                                                   if bot_id not in stale])
            for bot_id in deletes:
                if bot_id not in stale:
                    await repo.soft_delete(conn, bot_id=bot_id)
        for bot_id, (kind, _level, message, _data) in events:
            if kind == "quarantined" and bot_id not in stale:
                metrics.BOT_QUARANTINES.inc()
                logger.warning("bot quarantined", extra={"bot_id": bot_id, "reason": message})
        for bot_id in stale:
            self._requeue_bot(bot_id)
        for bot_id in written:
            self._conflicts.pop(bot_id, None)

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

