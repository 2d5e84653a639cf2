"""The swap: one transaction makes the candidate the bot's live config and retires the candidate.

In that transaction: the live bot row takes the candidate's strategy, params, execution and image
(version + 1, spec_version + 1, audit ``deploy-promote`` with before/after); the candidate gets
desired ``stopped`` and a deletion request (audit ``deploy-retire``); the deploy becomes
``promoted``. The reconciler then replaces the live bot's workload (its spec_version is newer) and
removes the candidate's. Nothing else ever changes a live bot's spec during a deploy, so there is
never a second live workload for one bot id: the candidate is a different bot id in mode shadow,
and the runtime keeps one workload per bot id.

Lock order, everywhere in this package: live bot row, then deploy row, then candidate row.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from gordon_manager.bots import repo as bots_repo
from gordon_manager.bots.service import diff, snapshot
from gordon_manager.deploys import repo
from gordon_manager.deploys.faults import failpoint
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)


class SwapImpossible(Exception):
    """The swap cannot happen (a bot row vanished): the deploy fails with this reason."""


async def audit(conn: asyncpg.Connection, *, bot_id: int, actor: str, action: str, before: Any, after: Any,
                request_id: str | None) -> None:
    """An audit row like the bots API writes (same snapshot and diff)."""
    before_snap, after_snap = snapshot(before), snapshot(after)
    current = after_snap or before_snap
    assert current is not None  # every audited action has a row before or after it
    await bots_repo.insert_audit(conn, bot_id=bot_id, actor=actor, action=action,
                                 version=current["version"], before=before_snap,
                                 after=after_snap, diff=diff(before_snap, after_snap), request_id=request_id)


async def retire_candidate(conn: asyncpg.Connection, *, candidate_bot_id: int | None, actor: str,
                           request_id: str | None = None) -> None:
    """Desired stopped + deletion requested (the reconciler removes it), audited; idempotent."""
    if candidate_bot_id is None:
        return
    before = await bots_repo.lock_bot(conn, bot_id=candidate_bot_id)
    if before is None or before["delete_requested_at"] is not None:
        return
    after = await bots_repo.set_desired_state(conn, bot_id=candidate_bot_id, desired_state="stopped", delete=True)
    await audit(conn, bot_id=candidate_bot_id, actor=actor, action="deploy-retire", before=before, after=after,
                request_id=request_id)


async def swap_locked(conn: asyncpg.Connection, *, deploy: Any, live: Any, actor: str, reason: str | None,
                      request_id: str | None = None, forced_by: str | None = None) -> asyncpg.Record:
    """The swap inside the caller's transaction; ``deploy`` (state swapping) and ``live`` are locked."""
    candidate = await bots_repo.lock_bot(conn, bot_id=deploy["candidate_bot_id"]) \
        if deploy["candidate_bot_id"] is not None else None
    if candidate is None:
        raise SwapImpossible(f"candidate bot {deploy['candidate_bot_id']} no longer exists")
    after = await repo.promote_spec(conn, bot_id=live["id"], candidate=candidate)
    assert after is not None  # the live row is locked by the caller
    await audit(conn, bot_id=live["id"], actor=actor, action="deploy-promote", before=live, after=after,
                request_id=request_id)
    await retire_candidate(conn, candidate_bot_id=candidate["id"], actor=actor, request_id=request_id)
    done = await repo.finish_deploy(conn, deploy_id=deploy["id"], state="promoted", reason=reason,
                                    to_version=after["version"], forced_by=forced_by)
    await bots_repo.insert_bot_event(
        conn, bot_id=live["id"], kind="deploy_promoted", level="info",
        message=(f"deploy {deploy['id']} promoted candidate bot {candidate['id']} "
                 f"(v{live['version']} → v{after['version']})"),
        data={"deployId": deploy["id"], "candidateBotId": candidate["id"], "fromVersion": live["version"],
              "toVersion": after["version"], "specVersion": after["spec_version"]})
    failpoint("swap.before_commit")
    return done


async def swap(pool: asyncpg.Pool, *, deploy_id: int, bot_id: int, actor: str, owner: str | None,
               reason: str | None = None) -> asyncpg.Record | None:
    """Swap a deploy in state swapping (held by ``owner`` when given); None when it is not (any more)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            live = await bots_repo.lock_bot(conn, bot_id=bot_id)
            deploy = await repo.get_deploy(conn, deploy_id=deploy_id, for_update=True)
            if deploy is None or deploy["state"] != "swapping" or deploy["bot_id"] != bot_id:
                return None
            if owner is not None and deploy["lease_owner"] != owner:
                return None
            if live is None:
                raise SwapImpossible(f"live bot {bot_id} no longer exists")
            done = await swap_locked(conn, deploy=deploy, live=live, actor=actor, reason=reason)
    failpoint("swap.after_commit")
    record_finished(done)
    logger.info("deploy promoted",
                extra={"deploy_id": deploy_id, "bot_id": bot_id, "to_version": done["to_version"]})
    return done


def record_finished(row: Any) -> None:
    """Count a finished bot deploy and its duration (call after the commit)."""
    metrics.DEPLOYS.labels(kind="bot", outcome=row["state"]).inc()
    if row["finished_at"] is not None:
        metrics.DEPLOY_DURATION.labels(kind="bot").observe(
            max(0.0, (row["finished_at"] - row["started_at"]).total_seconds()))
