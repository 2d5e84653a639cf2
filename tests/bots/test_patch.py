"""PATCH /bots/{id}: JSON Merge Patch (RFC 7396) of a bot's spec, If-Match required, validated and
audited like PUT."""

from __future__ import annotations

import asyncio

import pytest

from tests.bots.test_api import new_bot

MERGE_PATCH = "application/merge-patch+json"


@pytest.fixture
async def bot(client, operator_headers) -> dict:
    body = new_bot(labels={"team": "alpha", "team_name": "Quant Desk", "tier": "1"},
                   execution={"takerFeeBps": "7.5", "initialCash": "2500"})
    response = await client.post("/bots", json=body, headers=operator_headers)
    assert response.status_code == 201, response.text
    return response.json()


async def patch(client, operator_headers, bot: dict, body, *, version: int | None = None,
                content_type: str = MERGE_PATCH):
    import orjson

    headers = {**operator_headers, "content-type": content_type}
    headers["If-Match"] = f'"{bot["version"] if version is None else version}"'
    return await client.patch(f"/bots/{bot['id']}", content=orjson.dumps(body), headers=headers)


def spec_of(read: dict) -> dict:
    return {k: read[k] for k in ("name", "strategy", "symbol", "interval", "params", "execution", "mode", "image")}


async def test_a_label_patch_changes_that_label_and_keeps_the_rest(client, operator_headers, bot):
    response = await patch(client, operator_headers, bot, {"labels": {"tier": "2", "region": "eu"}})
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["labels"] == {"team": "alpha", "team_name": "Quant Desk", "tier": "2", "region": "eu"}
    assert spec_of(after) == spec_of(bot)  # omitted members untouched
    assert after["version"] == bot["version"] + 1 and response.headers["etag"] == f'"{after["version"]}"'
    assert after["specVersion"] == bot["specVersion"]  # labels are not what the workload runs
    assert (await client.get(f"/bots/{bot['id']}")).json() == after


async def test_null_removes_a_label_and_an_object_merges_key_by_key(client, operator_headers, bot):
    response = await patch(client, operator_headers, bot, {"labels": {"team_name": None, "nope": None},
                                                           "params": {"fast": 7}})
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["labels"] == {"team": "alpha", "tier": "1"}
    assert after["params"] == {**bot["params"], "fast": 7}  # `slow` kept
    assert after["execution"] == bot["execution"]
    assert after["specVersion"] == bot["specVersion"] + 1
    fee = await patch(client, operator_headers, after, {"execution": {"takerFeeBps": "3"}})
    assert fee.status_code == 200, fee.text
    assert fee.json()["execution"] == {**bot["execution"], "takerFeeBps": "3"}
    cleared = await patch(client, operator_headers, fee.json(), {"labels": None, "execution": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["labels"] == {}
    defaults = (await client.post("/bots", json=new_bot(), headers=operator_headers)).json()["execution"]
    assert cleared.json()["execution"] == defaults


async def test_application_json_is_a_merge_patch_too(client, operator_headers, bot):
    response = await patch(client, operator_headers, bot, {"name": bot["name"] + "-x"},
                           content_type="application/json; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.json()["name"] == bot["name"] + "-x" and response.json()["labels"] == bot["labels"]


@pytest.mark.parametrize("body, field", [
    ({"params": {"fast": 50}}, "params"),  # merged: fast 50 > slow 20
    ({"params": {"fast": "x"}}, "params.fast"),
    ({"symbol": "btc/usdt"}, "symbol"),
    ({"name": None}, "name"),  # a required member cannot be removed
    ({"labels": {"k": 1}}, "labels.k"),
    ({"execution": {"takerFeeBps": -1}}, "execution.takerFeeBps"),
    ({"execution": {"takerFeeBps": None}}, "execution.takerFeeBps"),  # a setting is a value: not removable
    ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),  # merged: more labels than a bot may have
    ({"desiredState": "running"}, "desiredState"),  # lifecycle actions, not the spec
    ({"image": "evil.example/miner:1"}, "image"),
])
async def test_an_invalid_merged_spec_is_a_422_naming_the_field(client, operator_headers, bot, body, field):
    response = await patch(client, operator_headers, bot, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, fields)
    assert (await client.get(f"/bots/{bot['id']}")).json()["version"] == bot["version"]  # nothing written


@pytest.mark.parametrize("raw, status", [(b"[1]", 422), (b'"x"', 422), (b"null", 422), (b"{nope", 400), (b"", 422)])
async def test_a_patch_that_is_not_an_object_is_refused(client, operator_headers, bot, raw, status):
    response = await client.patch(f"/bots/{bot['id']}", content=raw, headers={
        **operator_headers, "content-type": MERGE_PATCH, "If-Match": f'"{bot["version"]}"'})
    assert response.status_code == status, response.text
    if status == 422:
        assert [e["field"] for e in response.json()["errors"]] == ["body"]


async def test_if_match_is_required_and_checked(client, operator_headers, bot):
    url = f"/bots/{bot['id']}"
    body = b'{"labels": {"tier": "3"}}'
    missing = await client.patch(url, content=body, headers={**operator_headers, "content-type": MERGE_PATCH})
    assert missing.status_code == 428
    malformed = await client.patch(url, content=body, headers={**operator_headers, "content-type": MERGE_PATCH,
                                                               "If-Match": "abc"})
    assert malformed.status_code == 400
    stale = await patch(client, operator_headers, bot, {"labels": {"tier": "3"}}, version=bot["version"] + 5)
    assert stale.status_code == 412 and stale.json()["currentVersion"] == bot["version"]
    unknown = await client.patch("/bots/999999", content=body, headers={
        **operator_headers, "content-type": MERGE_PATCH, "If-Match": '"1"'})
    assert unknown.status_code == 404
    anonymous = await client.patch(url, content=body, headers={"content-type": MERGE_PATCH, "If-Match": '"1"'})
    assert anonymous.status_code == 401


async def test_two_patches_with_the_same_version_one_wins(client, operator_headers, bot):
    first, second = await asyncio.gather(
        patch(client, operator_headers, bot, {"labels": {"tier": "2"}}),
        patch(client, operator_headers, bot, {"labels": {"region": "us"}}))
    assert sorted([first.status_code, second.status_code]) == [200, 412], (first.text, second.text)
    loser = first if first.status_code == 412 else second
    assert loser.json()["currentVersion"] == bot["version"] + 1
    labels = (await client.get(f"/bots/{bot['id']}")).json()["labels"]
    assert labels in ({**bot["labels"], "tier": "2"}, {**bot["labels"], "region": "us"})  # never both


async def test_a_patch_is_audited_like_a_put(client, operator_headers, bot):
    response = await patch(client, operator_headers, bot, {"labels": {"tier": None}, "params": {"fast": 6}})
    assert response.status_code == 200, response.text
    entry = (await client.get(f"/bots/{bot['id']}/audit")).json()["items"][0]
    assert entry["action"] == "patch" and entry["actor"] == "operator" and entry["version"] == bot["version"] + 1
    assert set(entry["diff"]) == {"labels", "params", "specVersion"}
    assert entry["diff"]["labels"]["before"]["tier"] == "1" and "tier" not in entry["diff"]["labels"]["after"]


async def test_the_patch_itself_is_validated_before_the_version(client, operator_headers, bot):
    """Like a PUT, whose body is validated before its If-Match: an ill-typed patch is a 422 even when stale."""
    stale = bot["version"] + 3
    response = await patch(client, operator_headers, bot, {"labels": [None, None], "mode": None}, version=stale)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["labels"]
    unknown = await client.patch("/bots/999999", content=b'{"symbol": 1}', headers={
        **operator_headers, "content-type": MERGE_PATCH, "If-Match": '"1"'})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "symbol"
    valid_but_stale = await patch(client, operator_headers, bot, {"labels": {"x": "y"}}, version=stale)
    assert valid_but_stale.status_code == 412
