"""GET /bff/alerts/firing against a real AlertManager fed by a real Prometheus rule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from gordon_manager.proxies import alertmanager
from gordon_manager.proxies.alertmanager import normalise
from tests.conftest import wait_for
from tests.ops.peers import start_alertmanager


async def _silence(am_url: str, alertname: str) -> str:
    now = datetime.now(UTC)
    body = {"matchers": [{"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True}],
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "ops-test", "comment": "hidden from the console"}
    async with httpx.AsyncClient(base_url=am_url, timeout=2.0) as am:
        response = await am.post("/api/v2/silences", json=body)
        response.raise_for_status()
        return response.json()["silenceID"]


async def test_firing_alerts_are_normalised_and_silenced_ones_hidden(prom_stack, ops_app):
    await _silence(prom_stack.alertmanager.url, "GordonOpsTestSilenced")
    async with ops_app(peers={"gordon_alertmanager_url": prom_stack.alertmanager.url}) as (_app, client):

        async def firing():
            response = await client.get("/bff/alerts/firing")
            assert response.status_code == 200, response.text
            items = {a["alertname"]: a for a in response.json()["items"]}
            return items if "GordonOpsTestFiring" in items else None

        items = await wait_for(firing, timeout=30, interval=0.5)
    alert = items["GordonOpsTestFiring"]
    assert alert["state"] == "active"
    assert alert["severity"] == "warning"
    assert alert["summary"] == "always firing (ops test)"
    assert alert["description"] == "vector(1) > 0"
    assert alert["labels"] == {"alertname": "GordonOpsTestFiring", "severity": "warning", "suite": "ops",
                               "stack": "gordon"}
    assert alert["receivers"] == ["gordon-default"]
    assert alert["generatorUrl"].startswith("http")
    assert datetime.fromisoformat(alert["startsAt"]) <= datetime.now(UTC)
    assert set(alert) == {"fingerprint", "alertname", "severity", "state", "summary", "description", "startsAt",
                          "endsAt", "updatedAt", "generatorUrl", "receivers", "labels", "annotations"}
    # AlertManager does hold the silenced alert; the console must not see it.
    async with httpx.AsyncClient(base_url=prom_stack.alertmanager.url, timeout=2.0) as am:
        everything = (await am.get("/api/v2/alerts")).json()
    assert "GordonOpsTestSilenced" in {a["labels"]["alertname"] for a in everything}
    assert "GordonOpsTestSilenced" not in items


def test_normalise_drops_what_is_not_firing():
    base = {"fingerprint": "f", "labels": {"alertname": "A"}, "startsAt": "2026-01-01T00:00:00Z",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}
    assert normalise(base).alertname == "A"
    assert normalise({**base, "status": {"state": "suppressed", "silencedBy": ["s"], "inhibitedBy": []}}) is None
    assert normalise({**base, "status": {"state": "active", "silencedBy": [], "inhibitedBy": ["x"]}}) is None
    assert normalise({**base, "startsAt": "not a time"}) is None
    assert normalise("garbage") is None


async def test_alertmanager_down_is_502_and_unconfigured_503(ops_app, tmp_path):
    spare = start_alertmanager(tmp_path / "am")
    try:
        async with ops_app(peers={"gordon_alertmanager_url": spare.url}) as (_app, client):
            assert (await client.get("/bff/alerts/firing")).json() == {"items": []}
            spare.stop()
            response = await client.get("/bff/alerts/firing")
    finally:
        spare.stop()
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert "alertmanager is unreachable" in response.json()["detail"]
    async with ops_app() as (_app, client):
        response = await client.get("/bff/alerts/firing")
    assert response.status_code == 503
    assert alertmanager.ENV in response.json()["detail"]


async def test_alertmanager_that_is_not_alertmanager_is_502(prom_stack, ops_app):
    # Prometheus answers /api/v2/alerts with 404: a wrong URL is an upstream error, not our 500.
    async with ops_app(peers={"gordon_alertmanager_url": prom_stack.prometheus.url + "/"}) as (_app, client):
        response = await client.get("/bff/alerts/firing")
    assert response.status_code == 502
    assert response.json()["peer"] == "alertmanager"


async def test_alertmanager_that_hangs_is_504(ops_app):
    accepted = asyncio.Event()
    release = asyncio.Event()

    async def hang(reader, writer):
        # A peer that accepts and never answers, until the test is over (no duration to guess).
        accepted.set()
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with ops_app(http_timeout_s=0.3, peers={"gordon_alertmanager_url": f"http://127.0.0.1:{port}"}) as (
                _app, client):
            started = asyncio.get_running_loop().time()
            response = await client.get("/bff/alerts/firing")
            assert asyncio.get_running_loop().time() - started < 2
            assert accepted.is_set(), "the request reached the hanging peer"
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert response.status_code == 504
    assert response.json()["type"] == "/problems/gateway-timeout"
