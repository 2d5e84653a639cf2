"""The deploy controller on real Postgres rows (no processes): lease, states, incremental compare,
automatic abort and promotion through the one-transaction swap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gordon_manager.deploys import service
from gordon_manager.deploys.controller import DeployController
from gordon_manager.deploys.schemas import DeployPromote
from gordon_manager.errors import Conflict, NotFound, Unprocessable
from gordon_manager.observability import metrics
from tests.conftest import make_settings
from tests.deploys.helpers import T0, Leader, bars, live_bot, run, set_observed

BUY = ("buy", "0.5", "market", "100")
SELL = ("sell", "0.5", "market", "101")


def wire(model) -> dict:
    """A response model as the API sends it (camelCase, decimals as strings)."""
    return model.model_dump(mode="json", by_alias=True)


@pytest.fixture
def settings(ddb, tmp_path):
    return make_settings(ddb, tmp_path, deploy_compare_window=20, deploy_match_threshold=1.0, deploy_lease_ttl_s=5,
                         deploy_min_actions=3, deploy_max_window=40)


@pytest.fixture
def controller(pool):
    return DeployController(pool=pool, leader=Leader(), interval=0.2)


async def start(pool, settings, bot_id, **body) -> dict:
    deploy = await service.start_deploy(pool, bot_id=bot_id, body=DeployPromote(**body), settings=settings,
                                        actor="operator", request_id="req-1")
    return deploy.model_dump()


async def deploy_row(admin, deploy_id):
    return await admin.fetchrow("SELECT * FROM trading.bot_deploys WHERE id = $1", deploy_id)


async def comparing(admin, pool, settings, controller, **body):
    """A live bot and a deploy whose candidate runs, both with a running run: state comparing."""
    live = await live_bot(admin)
    deploy = await start(pool, settings, live, **body)
    cand = deploy["candidate_bot_id"]
    live_run, cand_run = await run(admin, live), await run(admin, cand, kind="shadow")
    await controller.run_once()
    assert (await deploy_row(admin, deploy["id"]))["state"] == "pending"  # candidate not running yet
    await set_observed(admin, cand, "running")
    await controller.run_once()
    row = await deploy_row(admin, deploy["id"])
    assert row["state"] == "comparing" and row["lease_owner"] == controller.owner
    assert (row["live_run_id"], row["candidate_run_id"]) == (live_run, cand_run)
    return live, cand, live_run, cand_run, deploy["id"]


async def test_identical_decisions_promote_through_the_swap(admin, pool, settings, controller):
    matches_before = metrics.SHADOW_MATCHES._value.get()
    promoted_before = metrics.DEPLOYS.labels(kind="bot", outcome="promoted")._value.get()
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 3, "slow": 8})
    decisions = {3: BUY, 9: SELL, 15: BUY}
    # the candidate runs ahead of the live bot: only bars both processed are compared
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=12, decisions=decisions)
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=30, decisions=decisions)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    # two action bars (3 and 9) agree; the ten bars where both hold are skipped, not counted as matches
    assert (row["state"], row["bars_compared"], row["matches"], row["divergences"], row["idle_skipped"]) == \
        ("comparing", 12, 2, 0, 10)
    assert row["compared_through"] == T0 + timedelta(minutes=11)
    before = await admin.fetchrow("SELECT * FROM trading.bot_configs WHERE id = $1", live)
    await bars(admin, bot_id=live, run_id=live_run, first=12, n=18, decisions=decisions)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    # exactly the window (with min_actions = 3 action bars), although more bars were there
    assert (row["state"], row["bars_compared"], row["matches"], row["idle_skipped"]) == ("promoted", 20, 3, 17)
    assert row["to_version"] == before["version"] + 1 and row["finished_at"] is not None
    after = await admin.fetchrow("SELECT * FROM trading.bot_configs WHERE id = $1", live)
    assert after["version"] == before["version"] + 1 and after["spec_version"] == before["spec_version"] + 1
    assert after["mode"] == "paper" and after["name"] == before["name"]  # the live bot stays the live bot
    candidate = await admin.fetchrow("SELECT * FROM trading.bot_configs WHERE id = $1", cand)
    assert candidate["mode"] == "shadow" and candidate["desired_state"] == "stopped"
    assert candidate["delete_requested_at"] is not None
    audit = await admin.fetch("SELECT bot_id, action, actor FROM trading.bot_config_audit WHERE bot_id = ANY($1)"
                              " ORDER BY id", [live, cand])
    assert [(a["bot_id"], a["action"]) for a in audit] == [(cand, "create"), (live, "deploy-promote"),
                                                           (cand, "deploy-retire")]
    promote = await admin.fetchrow("SELECT * FROM trading.bot_config_audit WHERE bot_id = $1 AND action = "
                                   "'deploy-promote'", live)
    assert promote["before"]["spec_version"] + 1 == promote["after"]["spec_version"]
    kinds = [r["kind"] for r in await admin.fetch("SELECT kind FROM trading.bot_events WHERE bot_id = $1", live)]
    assert "deploy_started" in kinds and "deploy_promoted" in kinds
    assert metrics.SHADOW_MATCHES._value.get() - matches_before == 3
    assert metrics.DEPLOYS.labels(kind="bot", outcome="promoted")._value.get() == promoted_before + 1
    # the outbox got the progress events the WS channel deploy_progress serves
    states = [r["s"] for r in await admin.fetch(
        "SELECT payload->'row'->>'state' AS s FROM trading.events WHERE channel = 'deploy_progress'"
        " AND (payload->'row'->>'id')::bigint = $1 ORDER BY id", deploy_id)]
    assert states[0] == "pending" and states[-1] == "promoted"
    assert {"shadowing", "comparing", "swapping"} <= set(states)


async def test_divergences_abort_with_both_decisions_recorded(admin, pool, settings, controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 4, "slow": 8}, match_threshold=0.9,
                                                                min_actions=20)
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=10, decisions={2: BUY, 5: SELL, 7: BUY})
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=10, decisions={2: BUY, 6: SELL, 8: ("buy", "0.7",
                                                                                                    "market", "100")})
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    # 0.9 over (at least) 20 action bars allows 2 divergences: the third (bar 7) aborts, bar 8 is never read
    assert row["state"] == "aborted" and row["divergences"] == 3 and row["matches"] == 1
    assert (row["idle_skipped"], row["bars_compared"]) == (4, 8) and "3 of 4 action bars diverge" in row["reason"]
    status = await _status(pool, live)
    assert status.state == "aborted" and status.match_rate == 0.25 and status.actions_compared == 4
    assert status.evidence_needed == 16 and status.min_actions == 20
    assert [d.bar_at for d in status.latest_divergences] == [T0 + timedelta(minutes=m) for m in (7, 6, 5)]
    first = status.latest_divergences[-1]
    assert wire(first.live_decision) == {"side": "sell", "qty": "0.5", "orderType": "market", "price": "101",
                                         "reason": "signal", "position": "0"}
    assert first.candidate_decision.side == "hold"
    candidate = await admin.fetchrow("SELECT desired_state, delete_requested_at FROM trading.bot_configs"
                                     " WHERE id = $1", cand)
    assert candidate["desired_state"] == "stopped" and candidate["delete_requested_at"] is not None
    live_row = await admin.fetchrow("SELECT version, spec_version, params FROM trading.bot_configs WHERE id = $1",
                                    live)
    assert live_row["spec_version"] == 1 and live_row["params"] == {"fast": 3, "slow": 8}


async def _status(pool, bot_id):
    async with pool.acquire() as conn:
        return await service.deploy_status(conn, bot_id=bot_id)


async def test_a_replaced_run_aborts_the_compare(admin, pool, settings, controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller)
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=5)
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=5)
    await controller.run_once()
    await admin.execute("UPDATE trading.runs SET status = 'stopped' WHERE id = $1", live_run)
    await run(admin, live)  # the live bot restarted: a new run from another state
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert row["state"] == "aborted" and "live bot's run" in row["reason"] and row["bars_compared"] == 5


@pytest.mark.parametrize("change, words", [
    ("UPDATE trading.bot_configs SET spec_version = spec_version + 1 WHERE id = $1", "changed during the deploy"),
    ("UPDATE trading.bot_configs SET desired_state = 'paused' WHERE id = $1", "no longer running"),
    ("UPDATE trading.bot_configs SET delete_requested_at = now() WHERE id = $1", "was deleted"),
])
async def test_the_live_bot_changing_underneath_aborts(admin, pool, settings, controller, change, words):
    live = await live_bot(admin)
    deploy = await start(pool, settings, live)
    await admin.execute(change, live)
    await controller.run_once()
    row = await deploy_row(admin, deploy["id"])
    assert row["state"] == "aborted" and words in row["reason"]


@pytest.mark.parametrize("status, words", [
    ({"quarantined": True, "quarantine_reason": "crash-looping", "last_error": "crash-looping"}, "quarantined"),
    ({"observed_version": 1, "last_error": "cannot execute"}, "failed to start"),
])
async def test_a_candidate_that_cannot_run_fails_the_deploy(admin, pool, settings, controller, status, words):
    live = await live_bot(admin)
    deploy = await start(pool, settings, live)
    state = "quarantined" if status.get("quarantined") else "error"
    await set_observed(admin, deploy["candidate_bot_id"], state, **status)
    await controller.run_once()
    row = await deploy_row(admin, deploy["id"])
    assert row["state"] == "failed" and words in row["reason"]


async def test_a_lapsed_lease_of_a_dead_controller_aborts_and_retires_the_candidate(admin, pool, settings,
                                                                                    controller):
    live = await live_bot(admin)
    lapsed = await start(pool, settings, live)
    other = await live_bot(admin)
    fresh = await start(pool, settings, other)
    await admin.execute("UPDATE trading.bot_deploys SET lease_owner = 'dead-manager', lease_expires_at = now() - "
                        "interval '1 second' WHERE id = $1", lapsed["id"])
    await admin.execute("UPDATE trading.bot_deploys SET lease_owner = 'other-manager', lease_expires_at = now() + "
                        "interval '1 hour' WHERE id = $1", fresh["id"])
    await controller.run_once()
    row = await deploy_row(admin, lapsed["id"])
    assert (row["state"], row["reason"]) == ("aborted", "lease lost")
    cand = await admin.fetchrow("SELECT desired_state, delete_requested_at FROM trading.bot_configs WHERE id = $1",
                                lapsed["candidate_bot_id"])
    assert cand["desired_state"] == "stopped" and cand["delete_requested_at"] is not None
    untouched = await deploy_row(admin, fresh["id"])
    assert untouched["state"] == "pending" and untouched["lease_owner"] == "other-manager"
    await service.abort_deploy(pool, bot_id=other, actor="operator", request_id=None)


async def test_our_own_lapsed_lease_is_not_renewed(admin, pool, settings, controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller)
    await admin.execute("UPDATE trading.bot_deploys SET lease_expires_at = now() - interval '1 second'"
                        " WHERE id = $1", deploy_id)
    await controller.run_once()  # a controller that froze past its TTL must not act on
    row = await deploy_row(admin, deploy_id)
    assert (row["state"], row["reason"]) == ("aborted", "lease lost")


async def test_a_lease_is_renewed_every_tick(admin, pool, settings, controller):
    live = await live_bot(admin)
    deploy = await start(pool, settings, live)
    await controller.run_once()
    first = (await deploy_row(admin, deploy["id"]))["lease_expires_at"]
    await controller.run_once()
    second = await deploy_row(admin, deploy["id"])
    assert second["lease_owner"] == controller.owner and second["lease_expires_at"] > first
    await service.abort_deploy(pool, bot_id=live, actor="operator", request_id=None)


async def test_a_follower_does_nothing(admin, pool, settings):
    live = await live_bot(admin)
    deploy = await start(pool, settings, live)
    follower = DeployController(pool=pool, leader=Leader(False), interval=0.2)
    await follower.run_once()
    row = await deploy_row(admin, deploy["id"])
    assert row["lease_owner"] is None and row["state"] == "pending"
    await service.abort_deploy(pool, bot_id=live, actor="operator", request_id=None)


async def test_a_swap_without_candidate_fails_and_a_broken_deploy_does_not_stop_the_others(admin, pool, settings,
                                                                                          controller):
    live, cand, *_rest, deploy_id = await comparing(admin, pool, settings, controller)
    await admin.execute("UPDATE trading.bot_deploys SET state = 'swapping' WHERE id = $1", deploy_id)
    await admin.execute("UPDATE trading.bot_configs SET deleted_at = now() WHERE id = $1", cand)
    other = await live_bot(admin)
    healthy = await start(pool, settings, other)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert row["state"] == "failed" and "no longer exists" in row["reason"]
    assert (await deploy_row(admin, healthy["id"]))["lease_owner"] == controller.owner
    await service.abort_deploy(pool, bot_id=other, actor="operator", request_id=None)


async def test_manual_promote_of_the_running_candidate_uses_the_same_swap(admin, pool, settings, controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 2, "slow": 9})
    # no evidence yet: refused without force
    with pytest.raises(Conflict, match="0 agreeing of 0 action bars"):
        await service.promote_shadow(pool, shadow_id=cand, actor="operator", request_id="r")
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=8, decisions={1: BUY, 3: SELL, 5: BUY})
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=8, decisions={1: BUY, 3: SELL, 5: BUY})
    await controller.run_once()  # 3 agreeing action bars: the evidence, before the window is walked
    done = await service.promote_shadow(pool, shadow_id=cand, actor="operator", request_id="r")
    assert done.id == deploy_id and done.state == "promoted" and done.reason == "promoted by operator"
    assert done.forced_by is None
    live_row = await admin.fetchrow("SELECT params, spec_version FROM trading.bot_configs WHERE id = $1", live)
    assert live_row["params"] == {"fast": 2, "slow": 9} and live_row["spec_version"] == 2
    await controller.run_once()  # nothing left to do
    assert (await deploy_row(admin, deploy_id))["state"] == "promoted"


async def test_a_candidate_stopped_by_hand_fails_the_deploy(admin, pool, settings, controller):
    live, cand, *_rest, deploy_id = await comparing(admin, pool, settings, controller)
    await admin.execute("UPDATE trading.bot_configs SET desired_state = 'stopped' WHERE id = $1", cand)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert row["state"] == "failed" and row["reason"] == "candidate was set stopped by hand"


async def test_a_candidate_that_never_acts_ends_inconclusive_and_only_force_promotes_it(admin, pool, settings,
                                                                                      controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 5, "slow": 30}, max_window=30)
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=20)
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=20)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert (row["state"], row["bars_compared"], row["idle_skipped"]) == ("comparing", 20, 20)  # window extends
    await bars(admin, bot_id=live, run_id=live_run, first=20, n=15, decisions={22: BUY})
    await bars(admin, bot_id=cand, run_id=cand_run, first=20, n=15, decisions={22: BUY})
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert (row["state"], row["bars_compared"], row["matches"]) == ("inconclusive", 30, 1)
    assert "only 1 action bars in 30 bars" in row["reason"] and "3 needed" in row["reason"]
    candidate = await admin.fetchrow("SELECT desired_state FROM trading.bot_configs WHERE id = $1", cand)
    assert candidate["desired_state"] == "stopped"  # retired like an aborted deploy's
    live_row = await admin.fetchrow("SELECT params, spec_version FROM trading.bot_configs WHERE id = $1", live)
    assert live_row["spec_version"] == 1
    with pytest.raises(Unprocessable, match="force: true"):
        await service.force_promote(pool, bot_id=live, deploy_id=deploy_id, force=False, actor="alice",
                                    request_id="r")
    with pytest.raises(NotFound):
        await service.force_promote(pool, bot_id=live, deploy_id=deploy_id + 1000, force=True, actor="alice",
                                    request_id="r")
    done = await service.force_promote(pool, bot_id=live, deploy_id=deploy_id, force=True, actor="alice",
                                       request_id="r")
    assert done.state == "promoted" and done.forced_by == "alice" and done.reason.startswith("forced by alice")
    live_row = await admin.fetchrow("SELECT params, spec_version FROM trading.bot_configs WHERE id = $1", live)
    assert live_row["params"] == {"fast": 5, "slow": 30} and live_row["spec_version"] == 2
    audit = await admin.fetchrow("SELECT action, actor FROM trading.bot_config_audit WHERE bot_id = $1"
                                 " ORDER BY id DESC LIMIT 1", live)
    assert (audit["action"], audit["actor"]) == ("deploy-force-promote", "alice")
    with pytest.raises(Conflict, match="only an inconclusive deploy"):
        await service.force_promote(pool, bot_id=live, deploy_id=deploy_id, force=True, actor="alice",
                                    request_id="r")


async def test_a_different_position_on_an_idle_bar_is_a_divergence_and_outcomes_are_reported(admin, pool, settings,
                                                                                          controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 2, "slow": 6})
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=5)
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=5)
    await admin.execute("UPDATE trading.equity_points SET position_qty = 0.5, equity = 10010 WHERE run_id = $1"
                        " AND ts >= $2", cand_run, T0 + timedelta(minutes=3))
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert row["state"] == "aborted" and row["divergences"] >= 1
    status = await _status(pool, live)
    diverged = status.latest_divergences[-1]
    assert wire(diverged.live_decision)["position"] == "0" and wire(diverged.candidate_decision)["position"] == "0.5"
    assert status.outcomes is not None and status.outcomes.bars == row["bars_compared"]
    assert status.outcomes.equity_max_abs_diff == 10.0 and status.outcomes.live.roundtrips == 0


async def test_one_changed_action_in_fifty_is_caught_on_its_bar(admin, pool, settings, controller):
    live, cand, live_run, cand_run, deploy_id = await comparing(admin, pool, settings, controller,
                                                                params={"fast": 3, "slow": 9}, min_actions=50,
                                                                compare_window=100, max_window=200)
    # 50 actions on every other bar; the candidate's 37th differs in quantity only
    live_actions = {2 * k + 1: (BUY if k % 2 == 0 else SELL) for k in range(50)}
    cand_actions = dict(live_actions)
    changed_bar = 2 * 36 + 1
    cand_actions[changed_bar] = ("sell", "0.55", "market", "101")
    await bars(admin, bot_id=live, run_id=live_run, first=0, n=100, decisions=live_actions)
    await bars(admin, bot_id=cand, run_id=cand_run, first=0, n=100, decisions=cand_actions)
    await controller.run_once()
    row = await deploy_row(admin, deploy_id)
    assert row["state"] == "aborted" and (row["matches"], row["divergences"]) == (36, 1)
    assert row["bars_compared"] == changed_bar + 1, "stopped on the bar of the changed action"
    assert row["compared_through"] == T0 + timedelta(minutes=changed_bar)
    status = await _status(pool, live)
    (divergence,) = status.latest_divergences
    assert wire(divergence.live_decision)["qty"] == "0.5" and wire(divergence.candidate_decision)["qty"] == "0.55"
