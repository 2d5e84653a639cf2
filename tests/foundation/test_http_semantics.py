"""HTTP semantics every route shares: OPTIONS and Allow, 415 for a body that is not JSON (issue 15, item 5)."""

from __future__ import annotations

import uuid

import pytest

from tests.foundation.test_edge import app_with, assert_problem  # noqa: F401  (fixture)

FORM = "application/x-www-form-urlencoded"


def bot_body() -> dict:
    return {"name": f"media-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"fast": 5, "slow": 20}}


# -- OPTIONS / Allow ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path, allow", [
    ("/bots", "GET, POST, OPTIONS"),
    ("/bots/1", "GET, PUT, PATCH, DELETE, OPTIONS"),
    ("/bots/1/start", "POST, OPTIONS"),
    ("/runs", "GET, OPTIONS"),
    ("/bff/runs", "GET, OPTIONS"),
    ("/bff/emergency-flatten", "POST, OPTIONS"),
    ("/healthz", "GET, OPTIONS"),
])
async def test_options_answers_every_method_of_the_path(client, path, allow):
    response = await client.options(path)
    assert response.status_code == 204, response.text
    assert response.headers["allow"] == allow and response.content == b""
    assert ("accept-patch" in response.headers) == ("PATCH" in allow)
    if "PATCH" in allow:
        assert response.headers["accept-patch"] == "application/merge-patch+json, application/json"


async def test_a_405_names_the_same_methods(client, operator_headers):
    for method, path, allow in [("DELETE", "/bots", "GET, POST, OPTIONS"),
                                ("POST", "/bots/1", "GET, PUT, PATCH, DELETE, OPTIONS")]:
        response = await client.request(method, path, headers=operator_headers)
        assert_problem(response, 405, "method-not-allowed")
        assert response.headers["allow"] == allow


async def test_options_on_an_unknown_path_is_404(client):
    assert_problem(await client.options("/no/such/path"), 404, "not-found")


async def test_options_needs_no_read_token_and_a_preflight_is_still_cors(app_with):
    async with app_with(read_token="read-token-0123456789") as http:
        response = await http.options("/bots/1")
        assert response.status_code == 204 and "PATCH" in response.headers["allow"]
    async with app_with(cors_origins="https://console.example.com") as http:
        preflight = await http.options("/bots/1", headers={
            "Origin": "https://console.example.com", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "x-operator-token, if-match, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://console.example.com"
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        plain = await http.options("/bots/1", headers={"Origin": "https://console.example.com"})
        assert plain.status_code == 204 and plain.headers["allow"].startswith("GET, PUT, PATCH")


# -- 415 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", [FORM, "text/plain", "application/merge-patch+json", "application/xml",
                                          None])
async def test_a_body_that_is_not_json_is_415_naming_the_types(client, operator_headers, content_type):
    headers = dict(operator_headers)
    if content_type:
        headers["content-type"] = content_type
    response = await client.post("/bots", content=b"name=x&strategy=y", headers=headers)
    body = assert_problem(response, 415, "unsupported-media-type")
    assert body["acceptedTypes"] == ["application/json"]
    assert "application/json" in body["detail"]
    assert (content_type or "no Content-Type") in body["detail"]


async def test_curl_d_gets_a_415_not_a_422(client, operator_headers):
    # `curl -d '{"name": ...}'` without -H content-type: JSON text, but declared as a form.
    import orjson

    response = await client.post("/bots", content=orjson.dumps(bot_body()),
                                 headers={**operator_headers, "content-type": FORM})
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
async def test_json_with_any_spelling_or_charset_passes(client, operator_headers, content_type):
    import orjson

    response = await client.post("/bots", content=orjson.dumps(bot_body()),
                                 headers={**operator_headers, "content-type": content_type})
    assert response.status_code == 201, response.text


async def test_a_patch_takes_merge_patch_or_json_only(client, operator_headers):
    created = (await client.post("/bots", json=bot_body(), headers=operator_headers)).json()
    response = await client.patch(f"/bots/{created['id']}", content=b"labels[x]=1", headers={
        **operator_headers, "content-type": FORM, "If-Match": '"1"'})
    body = assert_problem(response, 415, "unsupported-media-type")
    assert body["acceptedTypes"] == ["application/merge-patch+json", "application/json"]
    assert response.headers["accept-patch"] == "application/merge-patch+json, application/json"


async def test_an_empty_body_is_left_to_the_route(client, operator_headers):
    created = (await client.post("/bots", json=bot_body(), headers=operator_headers)).json()
    start = await client.post(f"/bots/{created['id']}/start", headers={**operator_headers, "content-type": FORM})
    assert start.status_code == 200, start.text  # no body, nothing to refuse
    missing = await client.post("/bots", headers=operator_headers)
    assert missing.status_code == 422  # the body is required: the route says so


async def test_a_body_on_a_route_without_one_is_415_too(client, operator_headers):
    created = (await client.post("/bots", json=bot_body(), headers=operator_headers)).json()
    response = await client.post(f"/bots/{created['id']}/start", content=b"x=1",
                                 headers={**operator_headers, "content-type": FORM})
    assert_problem(response, 415, "unsupported-media-type")


async def test_the_operator_token_is_checked_first(client):
    assert_problem(await client.post("/bots", content=b"x=1", headers={"content-type": FORM}), 401, "unauthorized")
    assert_problem(await client.post("/bots", content=b"x=1", headers={"content-type": FORM,
                                                                       "X-Operator-Token": "nope"}), 403, "forbidden")


async def test_no_route_no_415(client, operator_headers):
    headers = {**operator_headers, "content-type": FORM}
    assert_problem(await client.post("/no/such/path", content=b"x=1", headers=headers), 404, "not-found")
    assert_problem(await client.put("/bots", content=b"x=1", headers=headers), 405, "method-not-allowed")


async def test_every_write_documents_its_415(app):
    spec = app.openapi()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("post", "put", "patch"):
                assert "415" in operation["responses"], (method, path)
