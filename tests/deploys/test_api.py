"""The deploys HTTP surface: validation, auth, one deploy per bot, abort, status, history, manual promote,
service deploy requests (the work itself is in test_bot_deploy_e2e / test_service_deploy)."""

from __future__ import annotations

import pytest

from gordon_manager.db.connect import connect
from tests.deploys.helpers import live_bot


@pytest.fixture
async def sadmin(database):
    conn = await connect(database.admin_url)
    try:
        yield conn
    finally:
        await conn.close()


async def promote(client, headers, bot_id, **body):
    return await client.post(f"/bots/{bot_id}/deploy/promote", json=body, headers=headers)


async def test_start_status_conflict_abort_history(client, operator_headers, sadmin):
    bot_id = await live_bot(sadmin)
    response = await promote(client, operator_headers, bot_id, params={"fast": 4, "slow": 9}, compareWindow=30,
                             matchThreshold=0.9, leaseTtlS=10)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/bots/{bot_id}/deploy/status"
    deploy = response.json()
    assert deploy["state"] == "pending" and deploy["botId"] == bot_id and deploy["candidateBotId"]
    assert (deploy["compareWindow"], deploy["matchThreshold"], deploy["leaseTtlS"]) == (30, 0.9, 10)
    assert deploy["candidate"]["params"] == {"fast": 4, "slow": 9} and deploy["matchRate"] is None
    assert deploy["leaseOwner"] is None and deploy["leaseExpiresAt"]
    candidate = (await client.get(f"/bots/{deploy['candidateBotId']}")).json()
    assert candidate["mode"] == "shadow" and candidate["shadowOf"] == bot_id
    assert candidate["desiredState"] == "running" and candidate["params"] == {"fast": 4, "slow": 9}
    assert candidate["labels"]["deploy.id"] == str(deploy["id"])
    audit = (await client.get(f"/bots/{deploy['candidateBotId']}/audit")).json()["items"]
    assert [a["action"] for a in audit] == ["create"]

    again = await promote(client, operator_headers, bot_id)
    assert again.status_code == 409 and "already has a deploy" in again.json()["detail"]

    status = (await client.get(f"/bots/{bot_id}/deploy/status")).json()
    assert status["id"] == deploy["id"] and status["latestDivergences"] == [] and status["barsCompared"] == 0

    aborted = await client.post(f"/bots/{bot_id}/deploy/abort", headers=operator_headers)
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    assert aborted.json()["reason"] == "aborted by operator" and aborted.json()["finishedAt"]
    retired = (await client.get(f"/bots/{deploy['candidateBotId']}")).json()
    assert retired["desiredState"] == "stopped" and retired["deleteRequestedAt"]
    nothing = await client.post(f"/bots/{bot_id}/deploy/abort", headers=operator_headers)
    assert nothing.status_code == 409 and nothing.json()["currentState"] == "idle"

    # a second deploy is allowed once the first finished; history is newest first, keyset-paginated
    second = await promote(client, operator_headers, bot_id)
    assert second.status_code == 202
    await client.post(f"/bots/{bot_id}/deploy/abort", headers=operator_headers)
    page1 = (await client.get(f"/bots/{bot_id}/deploys", params={"limit": 1})).json()
    assert [d["id"] for d in page1["items"]] == [second.json()["id"]] and page1["nextCursor"]
    page2 = (await client.get(f"/bots/{bot_id}/deploys", params={"limit": 1, "cursor": page1["nextCursor"]})).json()
    assert [d["id"] for d in page2["items"]] == [deploy["id"]]
    page3 = (await client.get(f"/bots/{bot_id}/deploys", params={"limit": 1, "cursor": page2["nextCursor"]})).json()
    assert page3 == {"items": [], "nextCursor": None}
    tampered = await client.get(f"/bots/{bot_id}/deploys", params={"cursor": page1["nextCursor"][:-2] + "xx"})
    assert tampered.status_code == 400
    other_scope = await client.get(f"/bots/{bot_id + 1}/deploys", params={"cursor": page1["nextCursor"]})
    assert other_scope.status_code in (400, 404)


async def test_the_live_bot_must_be_running_and_not_a_shadow(client, operator_headers, sadmin):
    stopped = await live_bot(sadmin, desired="stopped", observed="stopped")
    response = await promote(client, operator_headers, stopped)
    assert response.status_code == 409 and "must be running" in response.json()["detail"]
    starting = await live_bot(sadmin, observed="starting")
    assert (await promote(client, operator_headers, starting)).json()["currentState"] == "starting"
    live = await live_bot(sadmin)
    shadow = await live_bot(sadmin, mode="shadow", shadow_of=live)
    response = await promote(client, operator_headers, shadow)
    assert response.status_code == 409 and "shadow bot" in response.json()["detail"]
    assert (await promote(client, operator_headers, 10**12)).status_code == 404
    assert (await client.get(f"/bots/{live}/deploy/status")).status_code == 404  # never deployed
    assert (await client.get(f"/bots/{10**12}/deploy/status")).status_code == 404
    assert (await client.get(f"/bots/{10**12}/deploys")).status_code == 404
    assert (await client.post(f"/bots/{10**12}/deploy/abort", headers=operator_headers)).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"params": {"fast": 9, "slow": 3}}, "params"),
    ({"strategy": "no_such_strategy"}, "strategy"),
    ({"image": "evil.example/miner:1"}, "image"),
    ({"execution": {"takerFeeBps": -1}}, "execution"),
    ({"compareWindow": 0}, "compareWindow"),
    ({"matchThreshold": 1.5}, "matchThreshold"),
    ({"leaseTtlS": 0.1}, "leaseTtlS"),
    ({"surprise": 1}, "surprise"),
])
async def test_candidate_is_validated_like_put_bots(client, operator_headers, sadmin, body, field):
    bot_id = await live_bot(sadmin)
    response = await promote(client, operator_headers, bot_id, **body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert (await client.get(f"/bots/{bot_id}/deploys")).json()["items"] == []  # nothing was created


async def test_another_strategy_starts_from_its_defaults(client, operator_headers, sadmin):
    bot_id = await live_bot(sadmin)
    response = await promote(client, operator_headers, bot_id, strategy="rsi_reversion")
    assert response.status_code == 202, response.text
    assert response.json()["candidate"]["strategy"] == "rsi_reversion"
    await client.post(f"/bots/{bot_id}/deploy/abort", headers=operator_headers)


async def test_mutations_need_the_operator_token(client, sadmin):
    bot_id = await live_bot(sadmin)
    for path in (f"/bots/{bot_id}/deploy/promote", f"/bots/{bot_id}/deploy/abort", f"/bots/{bot_id}/promote"):
        assert (await client.post(path, json={})).status_code == 401
        assert (await client.post(path, json={}, headers={"X-Operator-Token": "wrong"})).status_code == 403
    assert (await client.post("/deploys/service", json={})).status_code == 401
    assert (await client.delete("/deploys/service/1/abort")).status_code == 401


async def test_manual_promote_of_a_shadow_bot(client, operator_headers, sadmin):
    live = await live_bot(sadmin)
    created = await client.post("/bots", headers=operator_headers, json={
        "name": f"shadow-{live}", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
        "params": {"fast": 6, "slow": 12}, "mode": "shadow", "shadowOf": live, "image": "gordon-bot:2"})
    shadow = created.json()["id"]
    # no deploy compared it with its live bot: no evidence, so only with an explicit force
    refused = await client.post(f"/bots/{shadow}/promote", headers=operator_headers)
    assert refused.status_code == 409 and "no evidence" in refused.json()["detail"]
    assert refused.json()["currentState"] == "no_deploy"
    bad = await client.post(f"/bots/{shadow}/promote", headers=operator_headers, json={"force": "maybe"})
    assert bad.status_code == 422
    response = await client.post(f"/bots/{shadow}/promote", headers=operator_headers, json={"force": True})
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["state"] == "promoted" and done["candidateBotId"] == shadow and done["botId"] == live
    assert done["forcedBy"] == "operator"
    bot = (await client.get(f"/bots/{live}")).json()
    assert bot["params"] == {"fast": 6, "slow": 12} and bot["image"] == "gordon-bot:2" and bot["mode"] == "paper"
    assert bot["specVersion"] == 2 and bot["version"] == done["toVersion"]
    audit = (await client.get(f"/bots/{live}/audit")).json()["items"]
    assert audit[0]["action"] == "deploy-promote" and audit[0]["diff"]["params"]["after"] == {"fast": 6, "slow": 12}
    assert (await client.get(f"/bots/{shadow}")).json()["desiredState"] == "stopped"
    again = await client.post(f"/bots/{shadow}/promote", headers=operator_headers, json={"force": True})
    assert again.status_code == 409 and "being deleted" in again.json()["detail"]
    history = (await client.get(f"/bots/{live}/deploys")).json()["items"]
    assert history[0]["id"] == done["id"]
    assert history[0]["reason"] == "promoted by operator (forced without evidence)"


async def test_manual_promote_refusals(client, operator_headers, sadmin):
    live = await live_bot(sadmin)
    response = await client.post(f"/bots/{live}/promote", headers=operator_headers)
    assert response.status_code == 409 and "not a shadow bot" in response.json()["detail"]
    assert (await client.post(f"/bots/{10**12}/promote", headers=operator_headers)).status_code == 404
    other_market = await live_bot(sadmin, symbol="ETHUSDT", mode="shadow", shadow_of=live)
    response = await client.post(f"/bots/{other_market}/promote", headers=operator_headers)
    assert response.status_code == 422 and "ETHUSDT" in response.json()["detail"]
    # a deploy in progress with another candidate blocks a manual promotion of an unrelated shadow
    shadow = await live_bot(sadmin, mode="shadow", shadow_of=live)
    assert (await promote(client, operator_headers, live)).status_code == 202
    response = await client.post(f"/bots/{shadow}/promote", headers=operator_headers)
    assert response.status_code == 409 and "another deploy" in response.json()["detail"]
    await client.post(f"/bots/{live}/deploy/abort", headers=operator_headers)
    orphan_live = await live_bot(sadmin)
    orphan = await live_bot(sadmin, mode="shadow", shadow_of=orphan_live)
    await sadmin.execute("UPDATE trading.bot_configs SET delete_requested_at = now() WHERE id = $1", orphan_live)
    response = await client.post(f"/bots/{orphan}/promote", headers=operator_headers)
    assert response.status_code == 409 and "is gone" in response.json()["detail"]


async def test_service_deploy_requests_without_a_socket_proxy_are_503(client, operator_headers):
    body = {"service": "gordon-risk", "image": "gordon-bot:svc",
            "healthCheck": {"httpPath": "/health", "port": 8080}}
    response = await client.post("/deploys/service", json=body, headers=operator_headers)
    assert response.status_code == 503 and "DOCKER_SOCKET_PROXY_URL" in response.json()["detail"]
    assert (await client.get("/deploys/service/999999/status")).status_code == 404
    assert (await client.delete("/deploys/service/999999/abort", headers=operator_headers)).status_code == 404
    assert (await client.get("/deploys/service", params={"service": "Bad Name"})).status_code == 422


@pytest.mark.parametrize("health", [
    {"httpPath": "/health"},
    {"port": 8080},
    {"httpPath": "/health", "port": 8080, "command": ["true"]},
    {},
    {"command": []},
    {"command": [""]},
    {"httpPath": "health", "port": 8080},
])
async def test_health_check_must_be_http_or_command(client, operator_headers, health):
    body = {"service": "gordon-risk", "image": "gordon-bot:svc", "healthCheck": health}
    assert (await client.post("/deploys/service", json=body, headers=operator_headers)).status_code == 422



async def test_a_deploy_to_another_market_is_refused(client, operator_headers, sadmin):
    bot_id = await live_bot(sadmin)
    for body in ({"symbol": "ETHUSDT"}, {"interval": "5m"}, {"maxWindow": 10, "compareWindow": 20}):
        response = await promote(client, operator_headers, bot_id, **body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    response = await promote(client, operator_headers, bot_id, symbol="ETHUSDT")
    assert "symbol 'BTCUSDT'" in response.json()["detail"]
    # the live bot's own market is accepted (and the deploy shows its evidence settings)
    response = await promote(client, operator_headers, bot_id, symbol="BTCUSDT", interval="1m", minActions=7,
                             maxWindow=500)
    assert response.status_code == 202, response.text
    assert (response.json()["minActions"], response.json()["maxWindow"]) == (7, 500)
    assert response.json()["evidenceNeeded"] == 7 and response.json()["matchRate"] is None


async def test_force_promote_refusals(client, operator_headers, sadmin):
    bot_id = await live_bot(sadmin)
    assert (await client.post(f"/bots/{bot_id}/deploys/1/promote", json={"force": True})).status_code == 401
    missing = await client.post(f"/bots/{bot_id}/deploys/{10**12}/promote", headers=operator_headers,
                                json={"force": True})
    assert missing.status_code == 404
    started = (await promote(client, operator_headers, bot_id)).json()
    active = await client.post(f"/bots/{bot_id}/deploys/{started['id']}/promote", headers=operator_headers,
                               json={"force": True})
    assert active.status_code == 409 and active.json()["currentState"] == "pending"
    bad = await client.post(f"/bots/{bot_id}/deploys/{started['id']}/promote", headers=operator_headers,
                            json={"force": "yes please"})
    assert bad.status_code == 422


async def test_a_deploys_divergences_are_paged_oldest_first(client, operator_headers, sadmin):
    bot_id = await live_bot(sadmin)
    other = await live_bot(sadmin)
    deploy = (await promote(client, operator_headers, bot_id)).json()
    for minute in range(3):
        await sadmin.execute(
            "INSERT INTO trading.deploy_divergences (deploy_id, bar_at, live_decision, candidate_decision)"
            " VALUES ($1, '2024-01-01T00:00:00Z'::timestamptz + make_interval(mins => $2), $3, $4)",
            deploy["id"], minute, {"side": "buy", "position": "0"}, {"side": "hold", "position": "0"})
    path = f"/bots/{bot_id}/deploys/{deploy['id']}/divergences"
    first = (await client.get(path, params={"limit": 2})).json()
    assert [d["barAt"] for d in first["items"]] == ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z"]
    assert first["items"][0]["liveDecision"]["side"] == "buy" and first["nextCursor"]
    rest = (await client.get(path, params={"limit": 2, "cursor": first["nextCursor"]})).json()
    assert [d["barAt"] for d in rest["items"]] == ["2024-01-01T00:02:00Z"] and rest["nextCursor"] is None
    assert (await client.get(f"/bots/{other}/deploys/{deploy['id']}/divergences")).status_code == 404
    assert (await client.get(path, params={"cursor": "garbage"})).status_code == 400
