"""The deploy controller: holds each deploy's lease, compares decisions bar by bar, moves the state.

Per tick (only in the reconciling replica, the advisory-lock leader) and per active deploy:
- a lease held by another controller that has lapsed → ``aborted`` ('lease lost'), candidate retired
  (this is what a restarted manager does with the deploys of its dead predecessor);
- otherwise claim an unowned lease or renew ours (a lapsed lease of ours is never renewed);
- the live bot must still be running its starting spec, else ``aborted``;
- pending → shadowing when the candidate's workload runs; shadowing → comparing when both bots
  have a running run (the two runs are pinned, and the compare starts at the live run's first
  traded bar); comparing: the next bars both runs processed (keyset on bar time, one query per
  batch) are compared on actions (``compare.py``: idle bars skipped); more divergences than the
  threshold allows → ``aborted``; the window walked with at least ``min_actions`` action bars →
  swapping → the one-transaction swap → ``promoted``; still short of evidence at ``max_window``
  bars → ``inconclusive``. A candidate that cannot start (quarantined, config error) → ``failed``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from gordon_manager.botrunner.bar_loop import warmup_window
from gordon_manager.deploys import repo
from gordon_manager.deploys.compare import (
    REL_TOL,
    Verdict,
    decision_from,
    decisions_match,
    effective_max_window,
    evaluate,
    is_idle,
)
from gordon_manager.deploys.faults import failpoint
from gordon_manager.deploys.service import end_deploy
from gordon_manager.deploys.swap import SwapImpossible, swap
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.strategies.registry import get_strategy

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
        assert ctx is not None  # live_problem() reports a missing one
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
                start_after = await _compare_start(conn, ctx)
                deploy = await repo.pin_runs(conn, deploy_id=deploy["id"], live_run_id=ctx["live_run_id"],
                                             candidate_run_id=ctx["cand_run_id"], owner=self.owner,
                                             start_after=start_after)
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
            want = min(self.batch_bars, effective_max_window(deploy["max_window"], deploy["compare_window"])
                       - deploy["bars_compared"])
            got = 0
            if want > 0:
                try:
                    deploy, got = await self._compare_batch(deploy, want)
                except _Lost:
                    return None
            verdict = _verdict(deploy)
            if verdict.action in ("abort", "inconclusive"):
                state = "aborted" if verdict.action == "abort" else "inconclusive"
                await self._end(deploy, state, verdict.reason or state)
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
            matches, idle, divergent, walked = 0, 0, [], 0
            for r in rows:
                walked += 1
                live = decision_from(r["l_side"], r["l_qty"], r["l_type"], r["l_price"],
                                     r["l_reason"]).at(r["l_position"])
                cand = decision_from(r["c_side"], r["c_qty"], r["c_type"], r["c_price"],
                                     r["c_reason"]).at(r["c_position"])
                same = decisions_match(live, cand, self.rel_tol)
                if same and is_idle(live, cand):
                    idle += 1  # neither acted (and both hold the same): not evidence
                    if deploy["bars_compared"] + walked < deploy["compare_window"]:
                        continue  # an idle bar inside the window cannot change the verdict
                elif same:
                    matches += 1
                else:
                    divergent.append((deploy["id"], r["ts"], live.as_json(), cand.as_json()))
                # stop at the bar that decides: promoted with exactly the evidence, aborted at the divergence
                if _verdict(deploy, bars=walked, matches=matches, divergences=len(divergent)).action != "continue":
                    break
            rows = rows[:walked]
            async with conn.transaction():
                updated = await repo.record_compare(conn, deploy_id=deploy["id"], compared=len(rows),
                                                    matches=matches, divergences=len(divergent),
                                                    through=rows[-1]["ts"], owner=self.owner, idle=idle)
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


def _verdict(deploy: Any, *, bars: int = 0, matches: int = 0, divergences: int = 0) -> Verdict:
    """The compare verdict with the deploy's counts plus a batch's so far."""
    return evaluate(bars=deploy["bars_compared"] + bars, matches=deploy["matches"] + matches,
                    divergences=deploy["divergences"] + divergences, window=deploy["compare_window"],
                    max_window=effective_max_window(deploy["max_window"], deploy["compare_window"]),
                    min_actions=deploy["min_actions"],
                    threshold=deploy["match_threshold"])


def warmup_bars(strategy: str | None, params: Any) -> int:
    """Bars a strategy needs before its first decision (1 when unknown: the bot would not run anyway)."""
    try:
        spec = get_strategy(strategy or "")
        return warmup_window(spec, spec.parse_params(params or {}))
    except Exception:  # an unknown strategy or bad params: the candidate fails to start on its own
        return 1


async def _compare_start(conn: asyncpg.Connection, ctx: Any) -> datetime | None:
    """Just before the first bar both bots decide on: their warm-up bars are no evidence.

    The compare starts at the live run's first traded bar (``runs.config.tradeFrom``). A bot that
    follows the market warmed up on history before it, and its shadow too (the bot runner starts a
    shadow early enough for its own warm-up); a replay trades from its first bar, so the warm-up of
    the slower of the two strategies is skipped here.
    """
    if not ctx["live_trade_from"]:
        return None
    trade_from = datetime.fromisoformat(ctx["live_trade_from"])
    start = trade_from
    if ctx["live_range_start"] is not None and ctx["live_range_start"] >= trade_from - timedelta(milliseconds=1):
        warm = max(warmup_bars(ctx["live_strategy"], ctx["live_params"]),
                   warmup_bars(ctx["cand_strategy"], ctx["cand_params"]))
        start = await repo.warm_bar(conn, symbol=ctx["live_symbol"], interval=ctx["live_interval"],
                                    start=trade_from, bars_after=warm - 1) or trade_from
    return start - timedelta(milliseconds=1)


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
