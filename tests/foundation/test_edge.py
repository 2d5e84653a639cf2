"""The edge (http/edge.py): hosts, origins, CORS, read token, named operators, body limits.

Each test reproduces a finding of issue 14 against the in-process app; the /ws handshake and the
head limits, which need a real server, are in tests/events/test_ws_edge.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from gordon_manager.errors import ConfigurationError
from gordon_manager.http.auth import load_operator_tokens_file
from gordon_manager.http.edge import HostPolicy, OriginPolicy, host_name, normalise_origin
from tests.conftest import TEST_OPERATOR_TOKEN, make_settings
from tests.events.helpers import metric_value

PROBLEM = "application/problem+json"


def bot_body(**extra) -> dict:
    body = {"name": f"edge-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"fast": 5, "slow": 20}}
    body.update(extra)
    return body


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"/problems/{slug}", body
    return body


@pytest.fixture
def app_with(database, data_dir):
    """``async with app_with(**overrides) as client`` — an in-process app with these settings."""
    from contextlib import asynccontextmanager

    from gordon_manager.app import create_app

    @asynccontextmanager
    async def factory(base_url: str = "http://localhost", **overrides):
        application = create_app(make_settings(database, data_dir, **overrides))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
                yield http

    return factory


# -- hosts (DNS rebinding) -------------------------------------------------------------------------
async def test_a_foreign_host_name_is_refused(client):
    before = metric_value("gordon_manager_refusals_total", reason="host")
    assert_problem(await client.get("/bots", headers={"Host": "evil.example"}), 421, "host-not-allowed")
    assert metric_value("gordon_manager_refusals_total", reason="host") == before + 1


@pytest.mark.parametrize("host", ["localhost", "localhost:8083", "127.0.0.1:8083", "[::1]:8083", "10.1.2.3",
                                  "console.localhost"])
async def test_local_names_and_ip_literals_are_served(client, host):
    assert (await client.get("/bots", headers={"Host": host})).status_code == 200


async def test_configured_hosts_replace_the_defaults(app_with):
    async with app_with(allowed_hosts="gordon.example.com,*.ops.example.com") as http:
        assert (await http.get("/bots", headers={"Host": "gordon.example.com"})).status_code == 200
        assert (await http.get("/bots", headers={"Host": "a.ops.example.com:443"})).status_code == 200
        assert (await http.get("/bots", headers={"Host": "127.0.0.1"})).status_code == 200
        assert_problem(await http.get("/bots", headers={"Host": "ops.example.com.evil"}), 421, "host-not-allowed")
        assert_problem(await http.get("/bots", headers={"Host": "localhost"}), 421, "host-not-allowed")


def test_host_policy_parsing():
    policy = HostPolicy("", bind_host="0.0.0.0")
    assert policy.allows(None) and policy.allows(b"LOCALHOST.") and policy.allows(b"[fe80::1]:1")
    assert not policy.allows(b"evil.example") and not policy.allows("é".encode())
    assert HostPolicy("", bind_host="gordon.internal").allows(b"gordon.internal:8083")
    assert HostPolicy("*", bind_host="").allows(b"anything.example")
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:1") == "example.com"


# -- origins and CORS ------------------------------------------------------------------------------
async def test_a_page_on_another_origin_cannot_read(client):
    before = metric_value("gordon_manager_refusals_total", reason="origin")
    for path in ("/bots", "/portfolio", "/runs"):
        body = assert_problem(await client.get(path, headers={"Origin": "http://evil.example"}), 403,
                              "origin-not-allowed")
        assert "GORDON_MANAGER_CORS_ORIGINS" in body["detail"]
    assert metric_value("gordon_manager_refusals_total", reason="origin") == before + 3
    # Without an allow-list there is no CORS at all: no header would let a browser read anything.
    response = await client.get("/bots", headers={"Origin": "http://localhost"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["null", "file://", "http://localhost.evil.example", "https://localhost:8443"])
async def test_opaque_and_lookalike_origins_are_refused(client, origin):
    assert_problem(await client.get("/bots", headers={"Origin": origin}), 403, "origin-not-allowed")


async def test_same_origin_pages_pass_even_behind_tls(client, operator_headers):
    assert (await client.get("/bots", headers={"Origin": "http://localhost"})).status_code == 200
    # A TLS terminator forwards plain http: the page's https origin is still this Host.
    assert (await client.get("/bots", headers={"Origin": "https://localhost"})).status_code == 200
    created = await client.post("/bots", json=bot_body(), headers={"Origin": "http://localhost", **operator_headers})
    assert created.status_code == 201


async def test_an_allowed_origin_gets_cors_headers_and_a_preflight(app_with, operator_headers):
    async with app_with(cors_origins="https://console.example.com, http://localhost:5173") as http:
        response = await http.get("/bots", headers={"Origin": "https://console.example.com"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://console.example.com"
        exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
        assert {"etag", "x-request-id", "location", "idempotent-replayed", "x-audit-id"} <= exposed
        preflight = await http.options("/bots", headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-operator-token, content-type"})
        assert preflight.status_code == 200
        assert "x-operator-token" in preflight.headers["access-control-allow-headers"].lower()
        assert "POST" in preflight.headers["access-control-allow-methods"]
        refused = await http.options("/bots", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert_problem(refused, 403, "origin-not-allowed")


def test_origin_settings_are_checked():
    assert normalise_origin("HTTPS://Console.Example.com:443/") == "https://console.example.com"
    assert normalise_origin("http://[::1]:5173") == "http://[::1]:5173"
    for bad in ("console.example.com", "ftp://x", "https://x/path", "https://user@x", "https://x?q=1"):
        with pytest.raises(ConfigurationError, match="GORDON_MANAGER_CORS_ORIGINS"):
            OriginPolicy(bad)
    assert not OriginPolicy("").allows("ö".encode(), b"localhost")
    assert not OriginPolicy("").allows(b"http://localhost", None)


# -- the read token (opt-in) -----------------------------------------------------------------------
async def test_reads_need_the_read_token_when_one_is_set(app_with, operator_headers):
    async with app_with(read_token="r" * 32) as http:
        body = assert_problem(await http.get("/bots"), 401, "read-token-required")
        assert "X-Read-Token" in body["detail"]
        assert_problem(await http.get("/bots", headers={"X-Read-Token": "wrong" * 8}), 403, "forbidden")
        assert (await http.get("/bots", headers={"X-Read-Token": "r" * 32})).status_code == 200
        # An operator reads too; probes, the scrape and the API description stay open.
        assert (await http.get("/portfolio", headers=operator_headers)).status_code == 200
        for path in ("/healthz", "/metrics", "/openapi.json"):
            assert (await http.get(path)).status_code == 200, path
        # /config always needs the operator token, the read token is not enough.
        assert_problem(await http.get("/config", headers={"X-Read-Token": "r" * 32}), 401, "unauthorized")


async def test_reads_are_open_without_a_read_token(client):
    assert (await client.get("/bots")).status_code == 200


# -- named operators -------------------------------------------------------------------------------
def write_tokens(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


async def test_named_operators_are_the_actors_of_audit_rows(app_with, tmp_path):
    tokens = write_tokens(tmp_path / "operators", "# on call\nalice: alice-token-0123456789\n\n"
                                                  "bob:bob-token-0123456789abcdef\n")
    async with app_with(operator_tokens_file=tokens) as http:
        for name, token in (("alice", "alice-token-0123456789"), ("bob", "bob-token-0123456789abcdef"),
                            ("operator", TEST_OPERATOR_TOKEN)):
            created = await http.post("/bots", json=bot_body(), headers={"X-Operator-Token": token})
            assert created.status_code == 201, created.text
            audit = (await http.get(f"/bots/{created.json()['id']}/audit")).json()["items"]
            assert [row["actor"] for row in audit] == [name]
        assert_problem(await http.post("/bots", json=bot_body(), headers={"X-Operator-Token": "carol-token-0123456789"}),
                       403, "forbidden")


@pytest.mark.parametrize("text, message", [
    ("alice token-without-colon-0123", "expected `name:token`"),
    ("al ice:0123456789abcdef", "expected `name:token`"),
    ("alice:short", "shorter than 16"),
    ("alice:0123456789abcdef\nalice:fedcba9876543210", "listed twice"),
    ("alice:0123456789abcdef\nbob:0123456789abcdef", "reuses another"),
    ("# nobody\n", "names no operator"),
])
def test_a_bad_tokens_file_is_a_clear_configuration_error(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message):
        load_operator_tokens_file(write_tokens(tmp_path / "operators", text))


def test_a_missing_tokens_file_is_a_clear_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read GORDON_MANAGER_OPERATOR_TOKENS_FILE"):
        load_operator_tokens_file(tmp_path / "nope")


def test_a_tokens_file_readable_by_others_is_warned_about(tmp_path, caplog):
    path = write_tokens(tmp_path / "operators", "alice:0123456789abcdef\n")
    path.chmod(0o644)
    assert load_operator_tokens_file(path) == {"alice": "0123456789abcdef"}
    assert "chmod 600" in caplog.text


# -- bodies: token first, then size ----------------------------------------------------------------
class CountingBody:
    """An async request body that records how much of it the server pulled."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self):
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * self.size


async def test_a_write_without_a_token_is_refused_before_its_body_is_read(client):
    body = CountingBody(chunks=1600)  # 100 MiB if it were read
    response = await client.post("/bots", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 401, "unauthorized")
    assert body.pulled <= 1
    wrong = CountingBody(chunks=1600)
    response = await client.post("/bots", content=wrong, headers={"X-Operator-Token": "nope"})
    assert_problem(response, 403, "forbidden")
    assert wrong.pulled <= 1


async def test_a_declared_body_over_the_limit_is_413_unread(client, operator_headers):
    before = metric_value("gordon_manager_refusals_total", reason="body_size")
    response = await client.post("/bots", content=b"x" * (1024 * 1024 + 1),
                                 headers={"content-type": "application/json", **operator_headers})
    body = assert_problem(response, 413, "body-too-large")
    assert body["limit"] == 1024 * 1024
    assert metric_value("gordon_manager_refusals_total", reason="body_size") == before + 1


async def test_a_streamed_body_is_cut_at_the_limit(app_with, operator_headers):
    async with app_with(max_body_bytes=256 * 1024) as http:
        body = CountingBody(chunks=100)
        response = await http.post("/bots", content=body, headers={"content-type": "application/json",
                                                                    **operator_headers})
        assert_problem(response, 413, "body-too-large")
        assert body.pulled <= 6  # stopped right after crossing 256 KiB, not after 6.4 MiB


async def test_a_body_that_stops_arriving_is_408(app_with, operator_headers):
    stalled = asyncio.Event()

    async def slow():
        yield b'{"name": '
        await stalled.wait()  # never set: the client stops sending

    async with app_with(request_read_timeout_s=0.3) as http:
        before = metric_value("gordon_manager_refusals_total", reason="read_timeout")
        response = await http.post("/bots", content=slow(), headers={"content-type": "application/json",
                                                                      **operator_headers})
        assert_problem(response, 408, "request-timeout")
        assert metric_value("gordon_manager_refusals_total", reason="read_timeout") == before + 1


async def test_too_many_headers_is_431(client):
    headers = [(f"x-h{i}", "1") for i in range(101)]
    assert_problem(await client.get("/bots", headers=headers), 431, "headers-too-large")


# -- labels and params -----------------------------------------------------------------------------
async def test_a_huge_label_is_422_and_nothing_is_stored(client, operator_headers):
    before = metric_value("gordon_manager_refusals_total", reason="label_size")
    huge = bot_body(labels={"team": "x" * 257})
    response = await client.post("/bots", json=huge, headers=operator_headers)
    body = assert_problem(response, 422, "validation")
    assert body["errors"] == [{"field": "labels.team", "message": "a label value may be at most 256 bytes"}]
    long_key = await client.post("/bots", json=bot_body(labels={"k" * 64: "v"}), headers=operator_headers)
    assert assert_problem(long_key, 422, "validation")["errors"][0]["message"].startswith("a label key")
    assert metric_value("gordon_manager_refusals_total", reason="label_size") == before + 2
    assert huge["name"] not in {bot["name"] for bot in (await client.get("/bots?limit=500")).json()["items"]}
    ok = await client.post("/bots", json=bot_body(labels={"k" * 63: "é" * 128}), headers=operator_headers)
    assert ok.status_code == 201, ok.text


async def test_oversized_params_are_422(client, operator_headers):
    response = await client.post("/bots", json=bot_body(params={"fast": 5, "slow": 20, "pad": "x" * 20_000}),
                                 headers=operator_headers)
    body = assert_problem(response, 422, "validation")
    assert body["errors"][0]["field"] == "params"
