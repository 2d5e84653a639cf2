"""Bot config API: CRUD, validation, optimistic concurrency, idempotency, lifecycle, audit, auth."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import TEST_OPERATOR_TOKEN


def new_bot(**overrides) -> dict:
    body = {"name": f"bot-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"fast": 5, "slow": 20}, "mode": "paper"}
    body.update(overrides)
    return body


@pytest.fixture
async def bot(client, operator_headers) -> dict:
    response = await client.post("/bots", json=new_bot(), headers=operator_headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_get_roundtrip(client, operator_headers):
    body = new_bot(execution={"takerFeeBps": "7.5", "initialCash": 2500}, labels={"team": "alpha"})
    response = await client.post("/bots", json=body, headers=operator_headers)
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/bots/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["desiredState"] == "stopped" and created["version"] == 1 and created["specVersion"] == 1
    assert created["params"] == {"fast": 5, "slow": 20}
    assert created["execution"]["takerFeeBps"] == "7.5" and created["execution"]["initialCash"] == "2500"
    assert created["status"]["observedState"] == "pending"
    assert created["image"].startswith("ghcr.io/dlepaux/")
    got = await client.get(f"/bots/{created['id']}")
    assert got.status_code == 200 and got.json() == created and got.headers["etag"] == '"1"'


async def test_unknown_bot_is_404_problem(client):
    response = await client.get("/bots/999999")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("override, field", [
    ({"strategy": "no_such"}, "strategy"),
    ({"params": {"fast": 30, "slow": 10}}, "params"),
    ({"params": {"fast": "x"}}, "params.fast"),
    ({"symbol": "btc/usdt"}, "symbol"),
    ({"interval": "7m"}, "interval"),
    ({"name": "has space"}, "name"),
    ({"mode": "yolo"}, "mode"),
    ({"image": "evil.example/miner:1"}, "image"),
    ({"execution": {"takerFeeBps": -1}}, "execution.takerFeeBps"),
    ({"unknownField": 1}, "unknownField"),
])
async def test_validation_errors_are_422_naming_the_field(client, operator_headers, override, field):
    response = await client.post("/bots", json=new_bot(**override), headers=operator_headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status"] == 422
    fields = [e["field"] for e in body.get("errors", [])]
    assert any(f.startswith(field) for f in fields), (field, body)


async def test_duplicate_name_is_409(client, operator_headers, bot):
    response = await client.post("/bots", json=new_bot(name=bot["name"]), headers=operator_headers)
    assert response.status_code == 409 and bot["name"] in response.json()["detail"]


async def test_shadow_of_requires_shadow_mode_and_an_existing_bot(client, operator_headers, bot):
    bad_mode = await client.post("/bots", json=new_bot(shadowOf=bot["id"]), headers=operator_headers)
    assert bad_mode.status_code == 422
    missing = await client.post("/bots", json=new_bot(shadowOf=999999, mode="shadow"), headers=operator_headers)
    assert missing.status_code == 422
    ok = await client.post("/bots", json=new_bot(shadowOf=bot["id"], mode="shadow"), headers=operator_headers)
    assert ok.status_code == 201 and ok.json()["shadowOf"] == bot["id"]


async def test_put_requires_if_match(client, operator_headers, bot):
    body = new_bot(name=bot["name"], params={"fast": 7, "slow": 21})
    missing = await client.put(f"/bots/{bot['id']}", json=body, headers=operator_headers)
    assert missing.status_code == 428
    malformed = await client.put(f"/bots/{bot['id']}", json=body, headers={**operator_headers, "If-Match": "abc"})
    assert malformed.status_code == 400
    stale = await client.put(f"/bots/{bot['id']}", json=body, headers={**operator_headers, "If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["currentVersion"] == 1
    ok = await client.put(f"/bots/{bot['id']}", json=body, headers={**operator_headers, "If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 2 and ok.json()["specVersion"] == 2 and ok.headers["etag"] == '"2"'
    assert ok.json()["params"] == {"fast": 7, "slow": 21}
    same_spec = await client.put(f"/bots/{bot['id']}", json={**body, "labels": {"x": "y"}},
                                 headers={**operator_headers, "If-Match": 'W/"2"'})
    assert same_spec.json()["version"] == 3 and same_spec.json()["specVersion"] == 2


async def test_put_unknown_bot_is_404(client, operator_headers):
    response = await client.put("/bots/999999", json=new_bot(), headers={**operator_headers, "If-Match": '"1"'})
    assert response.status_code == 404


async def test_50_concurrent_puts_with_the_same_version_exactly_one_wins(client, operator_headers, bot):
    async def put(i: int):
        body = new_bot(name=bot["name"], params={"fast": 5 + (i % 10), "slow": 40})
        return await client.put(f"/bots/{bot['id']}", json=body, headers={**operator_headers, "If-Match": '"1"'})

    responses = await asyncio.gather(*(put(i) for i in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(412) == 49, codes
    audit = (await client.get(f"/bots/{bot['id']}/audit")).json()["items"]
    assert [a["action"] for a in audit] == ["update", "create"]


async def test_20_concurrent_identical_posts_with_one_idempotency_key(client, operator_headers, database):
    key = f"idem-{uuid.uuid4().hex}"
    body = new_bot()
    headers = {**operator_headers, "Idempotency-Key": key}
    responses = await asyncio.gather(*(client.post("/bots", json=body, headers=headers) for _ in range(20)))
    assert {r.status_code for r in responses} == {201}
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    import asyncpg

    conn = await asyncpg.connect(database.admin_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM trading.bot_configs WHERE name = $1", body["name"]) == 1
    finally:
        await conn.close()
    different = await client.post("/bots", json={**body, "symbol": "ETHUSDT"}, headers=headers)
    assert different.status_code == 422 and "Idempotency-Key" in different.json()["detail"]


async def test_lifecycle_transitions(client, operator_headers, bot):
    bot_id = bot["id"]

    async def act(action: str):
        return await client.post(f"/bots/{bot_id}/{action}", headers=operator_headers)

    for action, expected in [("pause", 409), ("resume", 409), ("stop", 409), ("start", 200), ("start", 409),
                             ("resume", 409), ("pause", 200), ("pause", 409), ("start", 409), ("resume", 200),
                             ("stop", 200)]:
        response = await act(action)
        assert response.status_code == expected, (action, response.text)
        if expected == 409:
            assert response.json()["currentState"] in response.json()["detail"]
    final = (await client.get(f"/bots/{bot_id}")).json()
    assert final["desiredState"] == "stopped" and final["specVersion"] == 1
    audit = (await client.get(f"/bots/{bot_id}/audit")).json()["items"]
    assert [a["action"] for a in audit] == ["stop", "resume", "pause", "start", "create"]
    assert audit[3]["diff"] == {"desiredState": {"before": "stopped", "after": "running"}}
    assert audit[3]["actor"] == "operator" and audit[3]["requestId"]


async def test_lifecycle_with_stale_if_match_is_412(client, operator_headers, bot):
    response = await client.post(f"/bots/{bot['id']}/start", headers={**operator_headers, "If-Match": '"9"'})
    assert response.status_code == 412


async def test_delete_sets_stopped_and_requests_removal(client, operator_headers, bot):
    await client.post(f"/bots/{bot['id']}/start", headers=operator_headers)
    response = await client.delete(f"/bots/{bot['id']}", headers=operator_headers)
    assert response.status_code == 202
    assert response.json()["desiredState"] == "stopped" and response.json()["deleteRequestedAt"]
    again = await client.delete(f"/bots/{bot['id']}", headers=operator_headers)
    assert again.status_code == 202
    start = await client.post(f"/bots/{bot['id']}/start", headers=operator_headers)
    assert start.status_code == 409 and "being deleted" in start.json()["detail"]


async def test_clear_quarantine(client, operator_headers, bot, database):
    not_quarantined = await client.post(f"/bots/{bot['id']}/clear-quarantine", headers=operator_headers)
    assert not_quarantined.status_code == 409
    import asyncpg

    conn = await asyncpg.connect(database.admin_url)
    try:
        await conn.execute("UPDATE trading.bot_status SET quarantined = true, observed_state = 'quarantined',"
                           " quarantine_reason = 'crash-looping' WHERE bot_id = $1", bot["id"])
    finally:
        await conn.close()
    start = await client.post(f"/bots/{bot['id']}/start", headers=operator_headers)
    assert start.status_code == 409 and start.json()["currentState"] == "quarantined"
    cleared = await client.post(f"/bots/{bot['id']}/clear-quarantine", headers=operator_headers)
    assert cleared.status_code == 200
    assert cleared.json()["status"]["quarantined"] is False
    assert (await client.post(f"/bots/{bot['id']}/start", headers=operator_headers)).status_code == 200


async def test_list_is_keyset_paginated_with_filters(client, operator_headers):
    created = []
    for _ in range(5):
        created.append((await client.post("/bots", json=new_bot(desiredState="paused"),
                                          headers=operator_headers)).json()["id"])
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, "desiredState": "paused"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/bots", params=params)).json()
        seen += [b["id"] for b in page["items"]]
        assert all(b["desiredState"] == "paused" for b in page["items"])
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert set(created) <= set(seen) and len(seen) == len(set(seen)) and seen == sorted(seen)


async def test_tampered_cursor_is_400(client, operator_headers, bot):
    await client.post("/bots", json=new_bot(), headers=operator_headers)
    page = (await client.get("/bots", params={"limit": 1})).json()
    cursor = page["nextCursor"]
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    response = await client.get("/bots", params={"cursor": tampered})
    assert response.status_code == 400 and response.json()["type"] == "/problems/bad-cursor"
    foreign = await client.get(f"/bots/{bot['id']}/audit", params={"cursor": cursor})
    assert foreign.status_code == 400


@pytest.mark.parametrize("limit", [0, -1, 100000, "x"])
async def test_bad_limit_is_422(client, limit):
    assert (await client.get("/bots", params={"limit": limit})).status_code == 422


async def test_audit_of_unknown_bot_is_404(client):
    assert (await client.get("/bots/999999/audit")).status_code == 404


MUTATIONS = [("POST", "/bots"), ("PUT", "/bots/{id}"), ("DELETE", "/bots/{id}"), ("POST", "/bots/{id}/start"),
             ("POST", "/bots/{id}/pause"), ("POST", "/bots/{id}/resume"), ("POST", "/bots/{id}/stop"),
             ("POST", "/bots/{id}/clear-quarantine")]


def mutating_routes(app) -> set[tuple[str, str]]:
    """Every non-GET operation the app documents (the OpenAPI document lists every route)."""
    found = set()
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if method.upper() not in ("GET", "HEAD", "OPTIONS"):
                found.add((method.upper(), path))
    return found


async def test_every_mutating_route_requires_the_operator_token(app, client, bot):
    # walk the app's own routes, so a new mutation without auth fails this test
    routes = mutating_routes(app)
    assert {(m, p.replace("{id}", "{botId}")) for m, p in MUTATIONS} <= routes
    for method, path in sorted(routes):
        url = re_path(path, bot["id"])
        for headers, expected in [({}, 401), ({"X-Operator-Token": "wrong"}, 403),
                                  ({"X-Operator-Token": "tökén-ünïcode".encode()}, 403),
                                  ({"X-Operator-Token": TEST_OPERATOR_TOKEN[:-1]}, 403)]:
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == expected, (method, url, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"


def re_path(path: str, bot_id: int) -> str:
    import re

    return re.sub(r"\{[A-Za-z_]*[iI]d\}", str(bot_id), path)


async def test_request_metrics_label_bot_routes_by_template(client):
    await client.get("/bots/123")
    await client.get("/bots/456")
    text = (await client.get("/metrics")).text
    assert 'route="/bots/{bot_id}"' in text
    assert 'route="/bots/123"' not in text and 'route="/bots/456"' not in text


@pytest.mark.parametrize("image", ["gordon-bot-evil:latest", "gordon-bot.evil.example/x:1",
                                   "ghcr.io/dlepaux/../../evil/x", "ghcr.io/dlepauxevil/x:1",
                                   "gordon-bot:bad tag", "GORDON-BOT:1"])
async def test_images_are_checked_by_whole_repository_name(client, operator_headers, image):
    response = await client.post("/bots", json=new_bot(image=image), headers=operator_headers)
    assert response.status_code == 422, (image, response.text)
    assert response.json()["errors"][0]["field"] == "image"


@pytest.mark.parametrize("image", ["gordon-bot:1", "gordon-bot/extra:2", "ghcr.io/dlepaux/gordon-manager:3.8.0",
                                   "gordon-bot@sha256:" + "a" * 64])
async def test_allowed_repositories_pass(client, operator_headers, image):
    response = await client.post("/bots", json=new_bot(image=image), headers=operator_headers)
    assert response.status_code == 201, (image, response.text)


@pytest.mark.parametrize("method, path, params, headers, field", [
    ("GET", "/bots/0", None, {}, "botId"),
    ("GET", "/bots/x/audit", None, {}, "botId"),
    ("GET", "/runs/0", None, {}, "runId"),
    ("GET", "/bots/1/deploys/0/divergences", None, {}, "deployId"),
    ("GET", "/bots", {"desiredState": "flying"}, {}, "desiredState"),
    ("GET", "/runs", {"to": "0.5"}, {}, "to"),
    ("POST", "/bots", None, {"Idempotency-Key": ""}, "Idempotency-Key"),
])
async def test_parameter_errors_name_the_parameter_as_the_contract_spells_it(client, operator_headers, method, path,
                                                                             params, headers, field):
    response = await client.request(method, path, params=params, json=new_bot() if method == "POST" else None,
                                    headers={**operator_headers, **headers})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
