"""Green/blue deploys end to end: reconciler + process runtime + real `gordon-manager bot` processes
replaying synthetic klines; the candidate shadows the live bot from its run start."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from tests.conftest import wait_for
from tests.deploys.conftest import HEADERS, deploy_settings, klines
from tests.deploys.sampler import BotSampler
from tests.reconcile.conftest import running_app


async def create_live_bot(client, symbol: str, *, speed: str = "40", params: dict | None = None) -> int:
    body = {"name": f"e2e-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": symbol, "interval": "1m",
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
                                         json={"compareWindow": 40, "matchThreshold": 1.0})
            assert response.status_code == 202, response.text
            candidate = response.json()["candidateBotId"]
            done = await wait_deploy(client, live, {"promoted", "aborted", "failed"})
            assert done["state"] == "promoted", done
            assert (done["barsCompared"], done["matches"], done["divergences"]) == (40, 40, 0)
            assert done["matchRate"] == 1.0 and done["latestDivergences"] == []
            # the compared bars did trade: the match is not just 40 holds
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
        done = await wait_deploy(client, live, {"promoted", "aborted", "failed"})
        assert done["state"] == "aborted", done
        # 200 bars at 0.99 allow 2 divergences; a compare batch records all it saw
        assert done["divergences"] >= 3 and f"{done['divergences']} divergences" in done["reason"]
        assert done["barsCompared"] < 200
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
