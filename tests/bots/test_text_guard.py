"""Text PostgreSQL cannot store (NUL, lone surrogates) is a 422 naming the field, never a 500."""

from __future__ import annotations

import pytest

from gordon_manager.http.text_guard import _find
from tests.bots.test_api import new_bot

# Raw JSON text: json.dumps would escape these the same way, the point is the escapes on the wire.
CASES = [
    ('"labels": {"team": "\\ud800"}', "labels.team", "surrogate"),
    ('"labels": {"team": "a\\u0000b"}', "labels.team", "NUL"),
    ('"image": "gordon-bot:\\u0000"', "image", "NUL"),
    ('"labels": {"\\udc00x": "v"}', "labels.\\udc00x", "surrogate"),
    ('"params": {"fast": 3, "slow": 9, "notes": ["ok", "\\uDBFF"]}', "params.notes[1]", "surrogate"),
]


def raw_body(extra: str) -> bytes:
    import json

    base = json.dumps(new_bot())
    return (base[:-1] + ", " + extra + "}").encode()


@pytest.mark.parametrize("extra, field, word", CASES)
async def test_create_refuses_unstorable_text_naming_the_field(client, operator_headers, extra, field, word):
    body = raw_body(extra).replace(b'"labels": {}, ', b"").replace(b'"image": "gordon-bot:1", ', b"")
    response = await client.post("/bots", content=body,
                                 headers={**operator_headers, "content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["errors"][0]["field"] == field and word in problem["errors"][0]["message"]


async def test_update_refuses_it_too_and_a_valid_pair_passes(client, operator_headers):
    created = await client.post("/bots", json=new_bot(labels={"emoji": "\U0001F680"}), headers=operator_headers)
    assert created.status_code == 201, created.text  # a surrogate *pair* is a valid character
    assert created.json()["labels"] == {"emoji": "\U0001F680"}
    bot = created.json()
    body = {k: v for k, v in new_bot().items()}
    body["name"] = bot["name"]
    raw = __import__("json").dumps(body)[:-1] + ', "labels": {"x": "\\u0000"}}'
    response = await client.put(f"/bots/{bot['id']}", content=raw.encode(),
                                headers={**operator_headers, "content-type": "application/json",
                                         "If-Match": f'"{bot["version"]}"'})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "labels.x"


def test_find_walks_keys_values_and_lists():
    assert _find({"a": ["x", {"b": "ok"}]}, "") is None
    assert _find("\x00", "") == ("body", "contains a NUL character")
    assert _find({"a": [1, {"b": "\ud800"}]}, "")[0] == "a[1].b"
