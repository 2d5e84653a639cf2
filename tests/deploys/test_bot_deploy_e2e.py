"""Green/blue deploys end to end: reconciler + process runtime + real `gordon-manager bot` processes
replaying synthetic klines; the candidate shadows the live bot from its run start."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from gordon_manager.deploys.controller import warmup_bars
from tests.botrunner.live_helpers import Bars
from tests.conftest import wait_for
from tests.deploys.conftest import HEADERS, deploy_settings, klines
from tests.deploys.sampler import BotSampler
from tests.reconcile.conftest import running_app


async def create_live_bot(client, symbol: str, *, speed: str = "40", params: dict | None = None,
                          strategy: str = "sma_crossover") -> int:
    body = {"name": f"e2e-{uuid.uuid4().hex[:8]}", "strategy": strategy, "symbol": symbol, "interval": "1m",
            "params": params or {"fast": 3, "slow": 8}, "mode": "paper", "image": "gordon-bot:1",
            "labels": {"replay.speed": speed}, "desiredState": "running"}
    response = await client.post("/bots", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def bot(client, bot_id: int) -> dict:
    return (await client.get(f"/bots/{bot_id}")).json()


async def wait_running(client, db, bot_id: int, *, version: int = 1, timeout: float = 20) -> dict:
    """The bot's status once its workload of ``version`` runs and its run has started."""
    async def check():
        b = await bot(client, bot_id)
        st = b.get("status") or {}
        if st.get("observedState") != "running" or st.get("observedVersion") != version:
            return None
        conn = await asyncpg.connect(db.admin_url)
        try:
            run = await conn.fetchrow("SELECT id FROM trading.runs WHERE bot_id = $1 AND status = 'running'"
                                      " AND (config->>'specVersion')::int = $2 ORDER BY id DESC LIMIT 1",
                                      bot_id, version)
        finally:
            await conn.close()
        return st if run else None

    return await wait_for(check, timeout=timeout, interval=0.1)


async def wait_deploy(client, bot_id: int, states: set[str], timeout: float = 30) -> dict:
    async def check():
        status = (await client.get(f"/bots/{bot_id}/deploy/status")).json()
        return status if status.get("state") in states else None

    return await wait_for(check, timeout=timeout, interval=0.1)


async def fetchval(db, query: str, *args):
    conn = await asyncpg.connect(db.admin_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_identical_candidate_promotes_itself_and_the_live_workload_is_swapped(ddb, data_dir):
    symbol = await klines(ddb, 600)
    async with running_app(deploy_settings(ddb, data_dir)) as (_app, client):
        live = await create_live_bot(client, symbol)
        first = await wait_running(client, ddb, live)
        sampler = BotSampler(live, ddb.name)
        sampler.start()
        try:
            response = await client.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                                         json={"compareWindow": 40, "matchThreshold": 1.0, "minActions": 3})
            assert response.status_code == 202, response.text
            candidate = response.json()["candidateBotId"]
            done = await wait_deploy(client, live, {"promoted", "aborted", "failed", "inconclusive"})
            assert done["state"] == "promoted", done
            # promoted on evidence: at least minActions agreeing action bars, idle bars skipped
            assert done["divergences"] == 0 and done["matches"] >= 3 and done["barsCompared"] >= 40
            assert done["matches"] + done["idleSkipped"] == done["barsCompared"]
            assert done["matchRate"] == 1.0 and done["latestDivergences"] == [] and done["evidenceNeeded"] == 0
            assert done["outcomes"]["equityMaxAbsDiff"] == "0"
            assert done["outcomes"]["live"]["roundtrips"] == done["outcomes"]["candidate"]["roundtrips"]
            # the compared bars did trade: the match is not just holds
            traded = await fetchval(ddb, "SELECT count(*) FROM trading.bot_decisions WHERE run_id = $1"
                                         " AND bar_at <= $2", done["liveRunId"],
                                   datetime.fromisoformat(done["comparedThrough"].replace("Z", "+00:00")))
            assert traded >= 2
            shadow_run = await fetchval(ddb, "SELECT range_start = (SELECT range_start FROM trading.runs WHERE id = $1)"
                                             " FROM trading.runs WHERE id = $2", done["liveRunId"], done["candidateRunId"])
            assert shadow_run is True  # the shadow started where the live run started
            # the reconciler converges: the live bot runs spec version 2, the candidate is removed
            second = await wait_running(client, ddb, live, version=2)
            assert second["workloadId"] != first["workloadId"]
            await wait_for(lambda: fetchval(ddb, "SELECT deleted_at IS NOT NULL FROM trading.bot_configs WHERE id = $1",
                                            candidate), timeout=15)
        finally:
            sampler.stop()
        assert sampler.max_concurrent() == 1, "two workloads for one bot id"
        assert len(sampler.pids()) == 2
        assert sampler.longest_gap() <= 0.5, f"no live process for {sampler.longest_gap():.3f}s (> 1 reconcile)"
        history = (await client.get(f"/bots/{live}/deploys")).json()["items"]
        assert history[0]["state"] == "promoted" and history[0]["toVersion"] == (await bot(client, live))["version"]


async def test_a_changed_parameter_diverges_and_aborts_itself(ddb, data_dir):
    symbol = await klines(ddb, 600, seed=5)
    async with running_app(deploy_settings(ddb, data_dir)) as (_app, client):
        live = await create_live_bot(client, symbol)
        before = await wait_running(client, ddb, live)
        response = await client.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                                     json={"params": {"fast": 2, "slow": 8}, "compareWindow": 200,
                                           "matchThreshold": 0.99})
        assert response.status_code == 202, response.text
        candidate = response.json()["candidateBotId"]
        done = await wait_deploy(client, live, {"promoted", "aborted", "failed", "inconclusive"})
        assert done["state"] == "aborted", done
        # at 0.99 over (at least) minActions = 5 action bars no divergence is allowed: the first aborts,
        # on the bar it happened
        assert done["divergences"] == 1 and "1 of" in done["reason"] and "action bars diverge" in done["reason"]
        assert done["barsCompared"] < 200
        assert done["comparedThrough"] == done["latestDivergences"][0]["barAt"]
        assert len(done["latestDivergences"]) == min(done["divergences"], 10)
        for div in done["latestDivergences"]:
            assert div["liveDecision"] != div["candidateDecision"]
            assert {div["liveDecision"]["side"], div["candidateDecision"]["side"]} - {"buy", "sell", "hold"} == set()
        # the live bot was never touched; the candidate goes away
        after = await bot(client, live)
        assert after["specVersion"] == 1 and after["params"] == {"fast": 3, "slow": 8}
        assert after["status"]["workloadId"] == before["workloadId"]
        await wait_for(lambda: fetchval(ddb, "SELECT deleted_at IS NOT NULL FROM trading.bot_configs WHERE id = $1",
                                        candidate), timeout=15)


async def test_other_strategies_are_never_promoted_and_their_divergences_are_listed(ddb, data_dir):
    symbol = await klines(ddb, 900, seed=7)
    async with running_app(deploy_settings(ddb, data_dir)) as (_app, client):
        live = await create_live_bot(client, symbol)
        await wait_running(client, ddb, live)
        for strategy in ("rsi_reversion", "donchian_breakout"):
            response = await client.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                                         json={"strategy": strategy, "compareWindow": 30, "matchThreshold": 0.95,
                                               "maxWindow": 300})
            assert response.status_code == 202, response.text
            done = await wait_deploy(client, live, {"promoted", "aborted", "failed", "inconclusive"}, timeout=60)
            assert done["state"] in ("aborted", "inconclusive"), (strategy, done)
            assert done["candidate"]["strategy"] == strategy
            # the compare starts where both are warm: the slower strategy's warm-up bars are skipped
            warm = max(warmup_bars("sma_crossover", {"fast": 3, "slow": 8}), warmup_bars(strategy, {}))
            assert warm > warmup_bars("sma_crossover", {"fast": 3, "slow": 8})
            first = await fetchval(ddb, "SELECT min(open_time) FROM market_data.klines WHERE symbol = $1", symbol)
            compare_from = datetime.fromisoformat(done["compareFrom"].replace("Z", "+00:00"))
            assert compare_from == first + timedelta(minutes=warm - 1) - timedelta(milliseconds=1)
            if done["state"] == "aborted":
                assert done["divergences"] >= 1 and done["latestDivergences"]
                div = done["latestDivergences"][0]
                assert div["liveDecision"] != div["candidateDecision"]
            after = await bot(client, live)
            assert after["strategy"] == "sma_crossover" and after["specVersion"] == 1


async def test_a_deploy_without_actions_ends_inconclusive_and_is_promoted_only_with_force(ddb, data_dir):
    bars = Bars(ddb.admin_url)  # a market that never moves: no strategy acts on it
    await bars.flat(400, 100.0)
    symbol = bars.symbol
    async with running_app(deploy_settings(ddb, data_dir)) as (_app, client):
        live = await create_live_bot(client, symbol)
        await wait_running(client, ddb, live)
        response = await client.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                                     json={"params": {"fast": 4, "slow": 10}, "compareWindow": 20, "maxWindow": 60})
        assert response.status_code == 202, response.text
        done = await wait_deploy(client, live, {"promoted", "aborted", "failed", "inconclusive"}, timeout=60)
        assert done["state"] == "inconclusive", done
        assert (done["barsCompared"], done["idleSkipped"], done["actionsCompared"]) == (60, 60, 0)
        assert done["evidenceNeeded"] == 5 and "only 0 action bars in 60 bars" in done["reason"]
        assert (await bot(client, live))["params"] == {"fast": 3, "slow": 8}
        path = f"/bots/{live}/deploys/{done['id']}/promote"
        refused = await client.post(path, headers=HEADERS, json={})
        assert refused.status_code == 422 and "force: true" in refused.json()["detail"]
        assert (await client.post(path, json={"force": True})).status_code == 401
        forced = await client.post(path, headers=HEADERS, json={"force": True})
        assert forced.status_code == 200, forced.text
        assert forced.json()["state"] == "promoted" and forced.json()["forcedBy"]
        after = await bot(client, live)
        assert after["params"] == {"fast": 4, "slow": 10} and after["specVersion"] == 2
        audit = (await client.get(f"/bots/{live}/audit")).json()["items"]
        assert audit[0]["action"] == "deploy-force-promote" and audit[0]["actor"] == forced.json()["forcedBy"]
        assert (await client.post(path, headers=HEADERS, json={"force": True})).status_code == 409


async def test_a_param_change_that_alters_one_action_in_fifty_is_caught_on_that_bar(ddb, data_dir):
    """Donchian with a take profit of 2% vs 2.1%: on these bars (seed 31) the two agree on 43 action
    bars, then one take profit fills for one and not the other (the positions differ) at bar 597."""
    from tests.botrunner.conftest import START

    symbol = await klines(ddb, 900, seed=31)
    params = {"entryPeriod": 5, "exitPeriod": 3, "takeProfitPct": 0.02}
    async with running_app(deploy_settings(ddb, data_dir)) as (_app, client):
        live = await create_live_bot(client, symbol, strategy="donchian_breakout", params=params, speed="60")
        await wait_running(client, ddb, live)
        response = await client.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                                     json={"params": {**params, "takeProfitPct": 0.021}, "compareWindow": 60,
                                           "maxWindow": 900, "minActions": 50, "matchThreshold": 1.0})
        assert response.status_code == 202, response.text
        done = await wait_deploy(client, live, {"promoted", "aborted", "failed", "inconclusive"}, timeout=90)
        assert done["state"] == "aborted", done
        assert (done["matches"], done["divergences"]) == (43, 1), done
        at = START + timedelta(minutes=597)
        assert datetime.fromisoformat(done["comparedThrough"].replace("Z", "+00:00")) == at
        (divergence,) = done["latestDivergences"]
        assert divergence["liveDecision"]["position"] != divergence["candidateDecision"]["position"]
