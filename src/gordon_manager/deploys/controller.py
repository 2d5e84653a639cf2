"""The deploy controller: holds each deploy's lease, compares decisions bar by bar, moves the state.

Per tick (only in the reconciling replica, the advisory-lock leader) and per active deploy:
- a lease held by another controller that has lapsed → ``aborted`` ('lease lost'), candidate retired
  (this is what a restarted manager does with the deploys of its dead predecessor);
- otherwise claim an unowned lease or renew ours (a lapsed lease of ours is never renewed);
- the live bot must still be running its starting spec, else ``aborted``;
- pending → shadowing when the candidate's workload runs; shadowing → comparing when both bots
  have a running run (the two runs are pinned); comparing: the next bars both runs processed
  (keyset on bar time, one query per batch) are compared and counted; above the divergence
  threshold → ``aborted``; the window passed at or above it → swapping → the one-transaction
  swap → ``promoted``. A candidate that cannot start (quarantined, config error) → ``failed``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from gordon_manager.deploys import repo
from gordon_manager.deploys.compare import REL_TOL, decision_from, decisions_match, evaluate
from gordon_manager.deploys.faults import failpoint
from gordon_manager.deploys.service import end_deploy
from gordon_manager.deploys.swap import SwapImpossible, swap
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

ACTOR = "deploy-controller"
BATCH_BARS = 5000


class Leadership(Protocol):
    """Anything that says whether this replica may act (the reconciler's LeaderElector)."""

    @property
    def is_leader(self) -> bool: ...


class DeployController(LoopService):
    """Drives every active bot deploy; safe to run in several replicas (only the leader acts)."""

    name = "deploy-controller"

    def __init__(self, *, pool: asyncpg.Pool, leader: Leadership | None, interval: float = 0.5,
                 batch_bars: int = BATCH_BARS, rel_tol: Decimal = REL_TOL, owner: str | None = None) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.leader = leader
        self.batch_bars = batch_bars
        self.rel_tol = rel_tol
        # One identity per controller instance: a restarted manager is a new owner, so the leases
        # of its dead predecessor lapse and abort instead of being silently resumed mid-compare.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.compared_bars = 0

    async def run_once(self) -> None:
        if self.leader is not None and not self.leader.is_leader:
            return
        async with self.pool.acquire() as conn:
            deploys = await repo.active_deploys(conn)
        for deploy in deploys:
            try:
                await self.step(deploy)
            except Exception as exc:  # one broken deploy must not stall the others
                metrics.ERRORS.labels(component=self.name, kind=type(exc).__name__).inc()
                logger.exception("deploy step failed", extra={"deploy_id": deploy["id"]})

    async def step(self, deploy: Any) -> None:
        """Advance one deploy as far as it can go now."""
        owner = deploy["lease_owner"]
        if owner is not None and deploy["lease_expired"]:
            await end_deploy(self.pool, deploy_id=deploy["id"], state="aborted", reason="lease lost", actor=ACTOR,
                             only_if_expired=True)
            return
        if owner not in (None, self.owner):
            return  # another live controller holds it
        async with self.pool.acquire() as conn:
            deploy = await repo.claim_or_renew(conn, deploy_id=deploy["id"], owner=self.owner)
            if deploy is None:
                return
            ctx = await repo.deploy_context(conn, bot_id=deploy["bot_id"],
                                            candidate_bot_id=deploy["candidate_bot_id"])
        problem = live_problem(deploy, ctx)
        if problem is not None:
            await self._end(deploy, "aborted", problem)
            return
        state = deploy["state"]
        if state != "swapping":
            problem = candidate_problem(ctx)
            if problem is not None:
                await self._end(deploy, "failed", problem)
                return
        if state == "pending":
            if ctx["cand_observed"] != "running":
                return
            deploy = await self._transition(deploy, "pending", "shadowing")
            if deploy is None:
                return
            failpoint("controller.after_shadowing")
            state = "shadowing"
        if state == "shadowing":
            if not (ctx["live_run_status"] == "running" and ctx["cand_run_status"] == "running"):
                return
            async with self.pool.acquire() as conn:
                deploy = await repo.pin_runs(conn, deploy_id=deploy["id"], live_run_id=ctx["live_run_id"],
                                             candidate_run_id=ctx["cand_run_id"], owner=self.owner)
            if deploy is None:
                return
            state = "comparing"
        if state == "comparing":
            problem = run_problem(deploy, ctx)
            if problem is not None:
                await self._end(deploy, "aborted", problem)
                return
            deploy = await self._compare(deploy)
            if deploy is None or deploy["state"] != "swapping":
                return
            state = "swapping"
        if state == "swapping":
            try:
                await swap(self.pool, deploy_id=deploy["id"], bot_id=deploy["bot_id"], actor=ACTOR,
                           owner=self.owner)
            except SwapImpossible as exc:
                await self._end(deploy, "failed", str(exc))

    async def _compare(self, deploy: Any) -> Any | None:
        """Compare batches until caught up (or out of time); the deploy row after, None when we lost it."""
        deadline = time.monotonic() + max(self.interval, 0.05) / 2
        while True:
            want = min(self.batch_bars, deploy["compare_window"] - deploy["bars_compared"])
            got = 0
            if want > 0:
                try:
                    deploy, got = await self._compare_batch(deploy, want)
                except _Lost:
                    return None
            verdict = evaluate(compared=deploy["bars_compared"], matches=deploy["matches"],
                               divergences=deploy["divergences"], window=deploy["compare_window"],
                               threshold=deploy["match_threshold"])
            if verdict.action == "abort":
                await self._end(deploy, "aborted", verdict.reason or "diverged")
                return None
            if verdict.action == "promote":
                swapping = await self._transition(deploy, "comparing", "swapping")
                if swapping is not None:
                    failpoint("swap.after_swapping")
                return swapping
            if got < want or time.monotonic() >= deadline:
                return deploy

    async def _compare_batch(self, deploy: Any, limit: int) -> tuple[Any, int]:
        async with self.pool.acquire() as conn:
            rows = await repo.compare_batch(conn, live_bot_id=deploy["bot_id"], live_run_id=deploy["live_run_id"],
                                            candidate_bot_id=deploy["candidate_bot_id"],
                                            candidate_run_id=deploy["candidate_run_id"],
                                            after=deploy["compared_through"], limit=limit)
            if not rows:
                return deploy, 0
            matches, divergent = 0, []
            for r in rows:
                live = decision_from(r["l_side"], r["l_qty"], r["l_type"], r["l_price"], r["l_reason"])
                cand = decision_from(r["c_side"], r["c_qty"], r["c_type"], r["c_price"], r["c_reason"])
                if decisions_match(live, cand, self.rel_tol):
                    matches += 1
                else:
                    divergent.append((deploy["id"], r["ts"], live.as_json(), cand.as_json()))
            async with conn.transaction():
                updated = await repo.record_compare(conn, deploy_id=deploy["id"], compared=len(rows),
                                                    matches=matches, divergences=len(divergent),
                                                    through=rows[-1]["ts"], owner=self.owner)
                if updated is None:  # aborted or taken over meanwhile: record nothing
                    raise _Lost
                await repo.insert_divergences(conn, rows=divergent)
        metrics.SHADOW_MATCHES.inc(matches)
        if divergent:
            metrics.SHADOW_DIVERGENCES.inc(len(divergent))
        self.compared_bars += len(rows)
        failpoint("controller.after_compare")
        return updated, len(rows)

    async def _transition(self, deploy: Any, from_state: str, to_state: str) -> Any | None:
        async with self.pool.acquire() as conn:
            return await repo.transition(conn, deploy_id=deploy["id"], from_state=from_state, to_state=to_state,
                                         owner=self.owner)

    async def _end(self, deploy: Any, state: str, reason: str) -> None:
        await end_deploy(self.pool, deploy_id=deploy["id"], state=state, reason=reason, actor=ACTOR,
                         owner=self.owner)


class _Lost(Exception):
    """The deploy changed hands or ended between reading it and recording a batch."""


def live_problem(deploy: Any, ctx: Any) -> str | None:
    """Why the live bot can no longer be deployed to (None when it can)."""
    if ctx is None or ctx["live_deleting"]:
        return f"live bot {deploy['bot_id']} was deleted"
    if ctx["live_desired"] != "running":
        return f"live bot {deploy['bot_id']} is no longer running (desired {ctx['live_desired']!r})"
    if deploy["from_spec_version"] is not None and ctx["live_spec_version"] != deploy["from_spec_version"]:
        return (f"live bot {deploy['bot_id']} changed during the deploy "
                f"(spec version {deploy['from_spec_version']} → {ctx['live_spec_version']})")
    return None


def candidate_problem(ctx: Any) -> str | None:
    """Why the candidate will not run (None while it runs or may still start)."""
    if not ctx["cand_exists"] or ctx["cand_mode"] != "shadow" or ctx["cand_deleting"]:
        return "candidate bot is gone"
    if ctx["cand_desired"] != "running":
        return f"candidate was set {ctx['cand_desired']} by hand"
    if ctx["cand_quarantined"]:
        return f"candidate quarantined: {ctx['cand_last_error']}"
    if ctx["cand_observed"] == "error" and ctx["cand_observed_version"] == ctx["cand_spec_version"]:
        return f"candidate failed to start: {ctx['cand_last_error']}"
    return None


def run_problem(deploy: Any, ctx: Any) -> str | None:
    """Why the pinned runs no longer give both bots the same inputs (a restart of either)."""
    pairs = (("live bot", deploy["live_run_id"], ctx["live_run_id"], ctx["live_run_status"]),
             ("candidate", deploy["candidate_run_id"], ctx["cand_run_id"], ctx["cand_run_status"]))
    for who, pinned, current, status in pairs:
        if current != pinned or status != "running":
            return (f"the {who}'s run {pinned} ended or was replaced during the compare "
                    f"(now run {current}, {status})")
    return None
