"""Rules of green/blue bot deploys: start (candidate as a shadow bot under a lease), abort, read,
and promote a shadow bot by hand through the same swap.

Every change commits with its audit rows in one transaction. Lock order: live bot, deploy, candidate.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from gordon_manager.bots import repo as bots_repo
from gordon_manager.bots import service as bots_service
from gordon_manager.bots.schemas import BotSpec
from gordon_manager.bots.service import validate_spec
from gordon_manager.deploys import compare, repo
from gordon_manager.deploys.compare import effective_max_window
from gordon_manager.deploys.faults import failpoint
from gordon_manager.deploys.schemas import (
    DeployOutcomes,
    DeployPromote,
    DeployRead,
    DeployStatus,
    DivergenceRead,
    RoundTripRead,
    SideOutcome,
)
from gordon_manager.deploys.swap import SwapImpossible, audit, record_finished, retire_candidate, swap_locked
from gordon_manager.errors import Conflict, NotFound, Unprocessable
from gordon_manager.http.casing import camelize
from gordon_manager.settings import Settings

logger = logging.getLogger(__name__)

CANDIDATE_FIELDS = ("strategy", "params", "execution", "image")
LATEST_DIVERGENCES = 10
ROUNDTRIPS_SHOWN = 20
_READ_FIELDS = frozenset(DeployRead.model_fields)


def deploy_read(row: Any) -> DeployRead:
    """API model of a bot_deploys row."""
    data = {k: v for k, v in dict(row).items() if k in _READ_FIELDS}
    data["candidate"] = camelize(data["candidate"] or {})
    actions = data["matches"] + data["divergences"]
    data["max_window"] = effective_max_window(data["max_window"], data["compare_window"])
    data["actions_compared"] = actions
    data["evidence_needed"] = max(0, data["min_actions"] - actions)
    data["match_rate"] = data["matches"] / actions if actions else None
    return DeployRead(**data)


def has_evidence(deploy: Any) -> bool:
    """A deploy comparing with enough agreeing action bars for a swap (the controller's rule)."""
    return deploy["state"] == "comparing" and compare.has_evidence(
        matches=deploy["matches"], divergences=deploy["divergences"], min_actions=deploy["min_actions"],
        threshold=deploy["match_threshold"])


def candidate_spec(live: Any, body: DeployPromote, settings: Settings) -> dict[str, Any]:
    """The candidate's validated column values: the live bot's spec with the body's changes."""
    for field in ("symbol", "interval"):
        wanted = getattr(body, field)
        if wanted is not None and wanted != live[field]:
            raise Unprocessable(f"the candidate must trade the live bot's {field} {live[field]!r}, not {wanted!r}: "
                                "a shadow-compare on another market proves nothing",
                                extra={"errors": [{"field": field, "message": f"must be {live[field]!r}"}]})
    strategy = body.strategy or live["strategy"]
    if body.params is not None:
        params = body.params
    else:  # another strategy does not understand the live bot's params: start from its defaults
        params = live["params"] if strategy == live["strategy"] else {}
    spec = BotSpec(name=live["name"], strategy=strategy, symbol=live["symbol"], interval=live["interval"],
                   params=params, execution=body.execution if body.execution is not None else live["execution"],
                   mode=live["mode"], image=body.image or live["image"], labels=live["labels"])
    return validate_spec(spec, settings)


def _candidate_labels(live_labels: dict[str, str], deploy_id: int) -> dict[str, str]:
    # Replay labels would make the candidate replay on its own clock; without them a shadow bot
    # starts where the live bot's run started, so both decide on the same bars with the same state.
    labels = {k: v for k, v in (live_labels or {}).items() if not k.startswith("replay.")}
    labels["deploy.id"] = str(deploy_id)
    return labels


async def start_deploy(pool: asyncpg.Pool, *, bot_id: int, body: DeployPromote, settings: Settings, actor: str,
                       request_id: str | None) -> DeployRead:
    """Create the deploy (pending, lease unclaimed) and its candidate shadow bot, in one transaction."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            live = await bots_repo.lock_bot(conn, bot_id=bot_id)
            if live is None:
                raise NotFound(f"bot {bot_id} does not exist")
            if live["mode"] == "shadow":
                raise Conflict(f"bot {bot_id} is a shadow bot: deploy to its live bot instead",
                               extra={"currentState": live["desired_state"]})
            status = await bots_repo.get_status(conn, bot_id=bot_id)
            observed = status["observed_state"] if status else "pending"
            deleting = live["delete_requested_at"] is not None
            if deleting or live["desired_state"] != "running" or observed != "running":
                raise Conflict(f"bot {bot_id} must be running to deploy (desired {live['desired_state']!r}, "
                               f"observed {observed!r})", extra={"currentState": observed})
            values = candidate_spec(live, body, settings)
            candidate = {field: values[field] for field in CANDIDATE_FIELDS}
            window = body.compare_window or settings.deploy_compare_window
            max_window = body.max_window or max(settings.deploy_max_window, window)
            if max_window < window:
                raise Unprocessable(f"maxWindow ({max_window}) must be at least compareWindow ({window})",
                                    extra={"errors": [{"field": "maxWindow", "message": "below compareWindow"}]})
            try:
                deploy = await repo.insert_deploy(
                    conn, bot_id=bot_id, state="pending", from_version=live["version"],
                    from_spec_version=live["spec_version"], candidate=candidate,
                    compare_window=window,
                    match_threshold=body.match_threshold if body.match_threshold is not None
                    else settings.deploy_match_threshold,
                    lease_ttl_s=body.lease_ttl_s or settings.deploy_lease_ttl_s, actor=actor,
                    min_actions=body.min_actions or settings.deploy_min_actions, max_window=max_window)
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"bot {bot_id} already has a deploy in progress",
                               extra={"currentState": "deploying"}) from exc
            values.update(name=f"{live['name'][:36]}.deploy-{deploy['id']}", mode="shadow", desired_state="running",
                          shadow_of=bot_id, labels=_candidate_labels(live["labels"], deploy["id"]))
            cand = await bots_repo.insert_bot(conn, values=values, actor=actor)
            await audit(conn, bot_id=cand["id"], actor=actor, action="create", before=None, after=cand,
                        request_id=request_id)
            deploy = await repo.set_candidate(conn, deploy_id=deploy["id"], candidate_bot_id=cand["id"])
            await bots_repo.insert_bot_event(conn, bot_id=bot_id, kind="deploy_started", level="info",
                                             message=f"deploy {deploy['id']} started: candidate bot {cand['id']}",
                                             data={"deployId": deploy["id"], "candidateBotId": cand["id"]})
    failpoint("deploy.after_create")
    logger.info("deploy started", extra={"deploy_id": deploy["id"], "bot_id": bot_id, "candidate": cand["id"]})
    return deploy_read(deploy)


async def finish_and_retire(conn: asyncpg.Connection, *, deploy: Any, state: str, reason: str, actor: str,
                            request_id: str | None = None) -> asyncpg.Record:
    """End a locked, active deploy as aborted/failed and retire its candidate (caller's transaction)."""
    done = await repo.finish_deploy(conn, deploy_id=deploy["id"], state=state, reason=reason)
    await retire_candidate(conn, candidate_bot_id=deploy["candidate_bot_id"], actor=actor, request_id=request_id)
    await bots_repo.insert_bot_event(conn, bot_id=deploy["bot_id"], kind=f"deploy_{state}", level="warning",
                                     message=f"deploy {deploy['id']} {state}: {reason}",
                                     data={"deployId": deploy["id"], "reason": reason})
    return done


async def end_deploy(pool: asyncpg.Pool, *, deploy_id: int, state: str, reason: str, actor: str,
                     owner: str | None = None, only_if_expired: bool = False) -> asyncpg.Record | None:
    """Abort/fail a deploy if it is still active (and still ours, or still lapsed); None otherwise."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            deploy = await repo.get_deploy(conn, deploy_id=deploy_id, for_update=True)
            if deploy is None or deploy["state"] not in repo.ACTIVE:
                return None
            if owner is not None and deploy["lease_owner"] != owner:
                return None
            if only_if_expired and not deploy["lease_expired"]:
                return None
            done = await finish_and_retire(conn, deploy=deploy, state=state, reason=reason, actor=actor)
    record_finished(done)
    logger.warning("deploy ended", extra={"deploy_id": deploy_id, "state": state, "reason": reason})
    return done


async def abort_deploy(pool: asyncpg.Pool, *, bot_id: int, actor: str, request_id: str | None) -> DeployRead:
    """Operator abort of the bot's deploy in progress (409 when there is none)."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await bots_service.require_known_bot(conn, bot_id=bot_id)
            deploy = await repo.active_for_bot(conn, bot_id=bot_id, for_update=True)
            if deploy is None:
                raise Conflict(f"bot {bot_id} has no deploy in progress", extra={"currentState": "idle"})
            done = await finish_and_retire(conn, deploy=deploy, state="aborted", reason=f"aborted by {actor}",
                                           actor=actor, request_id=request_id)
    record_finished(done)
    return deploy_read(done)


async def deploy_status(conn: asyncpg.Connection, *, bot_id: int) -> DeployStatus:
    """The bot's deploy in progress, else its latest one, with the latest divergences."""
    await bots_service.require_known_bot(conn, bot_id=bot_id)
    deploy = await repo.active_for_bot(conn, bot_id=bot_id) or await repo.latest_for_bot(conn, bot_id=bot_id)
    if deploy is None:
        raise NotFound(f"bot {bot_id} has never been deployed")
    divergences = await repo.latest_divergences(conn, deploy_id=deploy["id"], limit=LATEST_DIVERGENCES)
    return DeployStatus(**deploy_read(deploy).model_dump(),
                        latest_divergences=[DivergenceRead(**dict(r)) for r in divergences],
                        outcomes=await _outcomes(conn, deploy))


async def _outcomes(conn: asyncpg.Connection, deploy: Any) -> DeployOutcomes | None:
    """Equity tracking and round trips of both runs over the compared window (None before it starts)."""
    live_run, cand_run, through = deploy["live_run_id"], deploy["candidate_run_id"], deploy["compared_through"]
    if live_run is None or cand_run is None or through is None:
        return None
    start = deploy["compare_from"]
    tracking = await repo.equity_tracking(conn, live_run_id=live_run, candidate_run_id=cand_run, start=start,
                                          through=through)

    async def side(run_id: int) -> SideOutcome:
        count, net_pnl, items = await repo.window_roundtrips(conn, run_id=run_id, start=start, through=through,
                                                             limit=ROUNDTRIPS_SHOWN)
        return SideOutcome(roundtrips=count, net_pnl=net_pnl, items=[RoundTripRead(**r) for r in items])

    def num(value: Any) -> float | None:
        return None if value is None else float(value)

    return DeployOutcomes(bars=tracking["bars"], equity_max_abs_diff=num(tracking["max_abs_diff"]),
                          equity_max_rel_diff=num(tracking["max_rel_diff"]),
                          equity_last_diff=num(tracking["last_diff"]), live=await side(live_run),
                          candidate=await side(cand_run))


async def promote_shadow(pool: asyncpg.Pool, *, shadow_id: int, actor: str, request_id: str | None,
                         force: bool = False) -> DeployRead:
    """Promote an existing shadow bot by hand: the same swap as a deploy, recorded as a deploy.

    Only with evidence (its deploy is comparing and has enough agreeing action bars) or ``force``
    (audited: the deploy's ``forcedBy`` and reason name the actor).
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            shadow = await bots_repo.get_bot(conn, bot_id=shadow_id)
            if shadow is None:
                raise NotFound(f"bot {shadow_id} does not exist")
            if shadow["mode"] != "shadow" or shadow["shadow_of"] is None:
                raise Conflict(f"bot {shadow_id} is not a shadow bot (mode {shadow['mode']!r})",
                               extra={"currentState": shadow["desired_state"]})
            if shadow["delete_requested_at"] is not None:
                raise Conflict(f"bot {shadow_id} is being deleted", extra={"currentState": "deleting"})
            live = await bots_repo.lock_bot(conn, bot_id=shadow["shadow_of"])
            if live is None or live["delete_requested_at"] is not None:
                raise Conflict(f"the live bot {shadow['shadow_of']} of shadow bot {shadow_id} is gone",
                               extra={"currentState": "orphaned"})
            if (shadow["symbol"], shadow["interval"]) != (live["symbol"], live["interval"]):
                raise Unprocessable(f"shadow bot {shadow_id} trades {shadow['symbol']} {shadow['interval']}, "
                                    f"its live bot {live['symbol']} {live['interval']}: only strategy, params, "
                                    "execution and image can be promoted")
            deploy = await repo.active_for_bot(conn, bot_id=live["id"], for_update=True)
            if deploy is not None and deploy["candidate_bot_id"] != shadow_id:
                raise Conflict(f"bot {live['id']} has another deploy in progress (deploy {deploy['id']})",
                               extra={"currentState": "deploying"})
            evidence = deploy is not None and has_evidence(deploy)
            if not evidence and not force:
                have = (f"its deploy {deploy['id']} has {deploy['matches']} agreeing of "
                        f"{deploy['matches'] + deploy['divergences']} action bars compared "
                        f"({deploy['min_actions']} needed at match threshold {deploy['match_threshold']:g})"
                        if deploy is not None else "it has no deploy comparing it with its live bot")
                raise Conflict(f"shadow bot {shadow_id} has no evidence for a promotion: {have}; "
                               "send {\"force\": true} to promote it anyway",
                               extra={"currentState": deploy["state"] if deploy is not None else "no_deploy"})
            reason = f"promoted by {actor}" + ("" if evidence else " (forced without evidence)")
            if deploy is None:
                deploy = await repo.insert_deploy(
                    conn, bot_id=live["id"], state="swapping", from_version=live["version"],
                    from_spec_version=live["spec_version"],
                    candidate={f: shadow[f] for f in CANDIDATE_FIELDS}, compare_window=1, match_threshold=0,
                    lease_ttl_s=60, actor=actor)
                deploy = await repo.set_candidate(conn, deploy_id=deploy["id"], candidate_bot_id=shadow_id)
            else:
                deploy = await repo.set_swapping(conn, deploy_id=deploy["id"])
            try:
                done = await swap_locked(conn, deploy=deploy, live=live, actor=actor, reason=reason,
                                         request_id=request_id, forced_by=None if evidence else actor)
            except SwapImpossible as exc:  # pragma: no cover - the shadow row is locked above
                raise Conflict(str(exc)) from exc
    failpoint("swap.after_commit")
    record_finished(done)
    return deploy_read(done)


async def force_promote(pool: asyncpg.Pool, *, bot_id: int, deploy_id: int, force: bool, actor: str,
                        request_id: str | None) -> DeployRead:
    """Promote an inconclusive deploy's candidate spec, only with ``force`` (audited with the actor).

    The candidate bot was retired when the deploy ended; its spec is the deploy's ``candidate``.
    """
    if not force:
        raise Unprocessable("an inconclusive deploy is promoted only with an explicit force: true",
                            extra={"errors": [{"field": "force", "message": "must be true"}]})
    async with pool.acquire() as conn:
        async with conn.transaction():
            live = await bots_repo.lock_bot(conn, bot_id=bot_id)
            if live is None:
                raise NotFound(f"bot {bot_id} does not exist")
            deploy = await repo.get_deploy(conn, deploy_id=deploy_id, for_update=True)
            if deploy is None or deploy["bot_id"] != bot_id:
                raise NotFound(f"bot {bot_id} has no deploy {deploy_id}")
            if deploy["state"] != "inconclusive":
                raise Conflict(f"deploy {deploy_id} is {deploy['state']}: only an inconclusive deploy can be "
                               "force-promoted", extra={"currentState": deploy["state"]})
            if live["delete_requested_at"] is not None or live["spec_version"] != deploy["from_spec_version"]:
                raise Conflict(f"bot {bot_id} changed since deploy {deploy_id} (spec version "
                               f"{deploy['from_spec_version']} → {live['spec_version']}): deploy again",
                               extra={"currentState": "changed"})
            after = await repo.promote_spec(conn, bot_id=bot_id, candidate=deploy["candidate"])
            assert after is not None  # the live row is locked above
            await audit(conn, bot_id=bot_id, actor=actor, action="deploy-force-promote", before=live, after=after,
                        request_id=request_id)
            done = await repo.finish_deploy(conn, deploy_id=deploy_id, state="promoted",
                                            reason=f"forced by {actor} ({deploy['reason']})",
                                            to_version=after["version"], forced_by=actor)
            await bots_repo.insert_bot_event(
                conn, bot_id=bot_id, kind="deploy_promoted", level="warning",
                message=f"deploy {deploy_id} force-promoted by {actor} without enough evidence "
                        f"(v{live['version']} → v{after['version']})",
                data={"deployId": deploy_id, "forcedBy": actor, "fromVersion": live["version"],
                      "toVersion": after["version"]})
    logger.warning("inconclusive deploy force-promoted", extra={"deploy_id": deploy_id, "actor": actor})
    return deploy_read(done)


async def deploys_page(pool: asyncpg.Pool, *, bot_id: int, before_id: int | None, limit: int) -> list[Any]:
    """A page of the bot's deploys, newest first (NotFound for a bot never created)."""
    async with pool.acquire() as conn:
        await bots_service.require_known_bot(conn, bot_id=bot_id)
        return await repo.list_deploys(conn, bot_id=bot_id, before_id=before_id, limit=limit)


async def divergences_page(pool: asyncpg.Pool, *, bot_id: int, deploy_id: int, after_id: int | None,
                           limit: int) -> list[Any]:
    """A page of one of the bot's deploys' divergences, oldest first (NotFound when it is not the bot's)."""
    async with pool.acquire() as conn:
        deploy = await repo.get_deploy(conn, deploy_id=deploy_id)
        if deploy is None or deploy["bot_id"] != bot_id:
            raise NotFound(f"bot {bot_id} has no deploy {deploy_id}")
        return await repo.divergences_page(conn, deploy_id=deploy_id, after_id=after_id, limit=limit)
