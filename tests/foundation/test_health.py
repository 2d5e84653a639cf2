"""/healthz, /readyz, /metrics."""

from __future__ import annotations

import contextlib
import re

import pytest

from gordon_manager.app import create_app
from gordon_manager.observability.metrics import SEED_METRIC_NAMES
from gordon_manager.version import __version__
from tests.conftest import create_database, make_settings


async def test_healthz_ok_with_version_and_checks(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__ == "3.8.0"
    assert body["degraded"] == []
    assert body["checks"]["database"]["ok"] is True


async def test_healthz_reports_degraded_reasons(app, client):
    app.state.ctx.health.set_degraded("ws_subscriber_overload", "hub", "12 overflows/min")
    body = (await client.get("/healthz")).json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["ws_subscriber_overload"]
    assert body["degradedDetails"] == {"ws_subscriber_overload": {"hub": "12 overflows/min"}}
    app.state.ctx.health.clear_degraded("ws_subscriber_overload", "hub")
    assert (await client.get("/healthz")).json()["status"] == "ok"


def test_unknown_degraded_reason_is_refused():
    from gordon_manager.health.state import HealthState

    with pytest.raises(ValueError):
        HealthState().set_degraded("bored", "x")


@contextlib.asynccontextmanager
async def app_on_a_droppable_database(data_dir, pg_server_url):
    """(client of a running app on its own database, drop(): DROP DATABASE … WITH (FORCE))."""
    import asyncpg
    import httpx

    db = await create_database(pg_server_url)
    app = create_app(make_settings(db, data_dir))

    async def drop() -> None:
        conn = await asyncpg.connect(pg_server_url)
        try:
            await conn.execute(f'DROP DATABASE "{db.name}" WITH (FORCE)')
        finally:
            await conn.close()

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
            yield http, drop


async def test_healthz_degraded_peer_down_when_database_goes_away(database, data_dir, pg_server_url):
    async with app_on_a_droppable_database(data_dir, pg_server_url) as (http, drop):
        assert (await http.get("/readyz")).status_code == 200
        await drop()
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["degraded"] == ["peer_down"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "database not answering" in ready.json()["detail"]


async def test_readyz_503_while_migrations_pending(pg_server_url, data_dir):
    db = await create_database(pg_server_url, migrated=False)
    # without migrations the service role does not exist in this database's grants; log in as admin
    settings = make_settings(db, data_dir)
    from pydantic import SecretStr

    app = create_app(settings.model_copy(update={"database_url": SecretStr(db.admin_url)}))
    import httpx

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert "migrations pending" in response.json()["detail"]
            from gordon_manager.db.migrate import migrate

            await migrate(db.admin_url)
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            from gordon_manager.db.migrate import latest_version

            assert ready.json() == {"ready": True, "migrationVersion": latest_version()}


async def test_metrics_exports_every_seed_metric_with_help(client):
    text = (await client.get("/metrics")).text
    assert len(SEED_METRIC_NAMES) == 29
    assert len([n for n in SEED_METRIC_NAMES if n.startswith("gordon_manager_")]) == 28
    for name in SEED_METRIC_NAMES:
        assert re.search(rf"^# HELP {name} \S", text, re.M), f"{name} has no HELP line"
    assert re.search(r"^gordon_manager_up 1\.0$", text, re.M)


async def test_request_metrics_use_the_route_template(app, client):
    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict:
        return {"id": thing_id}

    await client.get("/things/123")
    await client.get("/things/456")
    await client.get("/no/such/path/789")
    text = (await client.get("/metrics")).text
    assert 'route="/things/{thing_id}"' in text
    assert "/things/123" not in text and "/things/456" not in text
    assert "789" not in text.split("gordon_manager_requests_total", 1)[1].split("# HELP", 1)[0]
    series = re.findall(r'^gordon_manager_requests_total\{method="GET",route="/things/\{thing_id\}",status="200"\} (\S+)$',
                        text, re.M)
    assert series and float(series[0]) >= 2.0


async def test_every_endpoint_answers_503_when_the_database_is_gone(database, data_dir, pg_server_url):
    from tests.conftest import TEST_OPERATOR_TOKEN

    headers = {"X-Operator-Token": TEST_OPERATOR_TOKEN}
    async with app_on_a_droppable_database(data_dir, pg_server_url) as (http, drop):
        assert (await http.get("/bots")).status_code == 200
        await drop()
        calls = [http.get("/bots"), http.get("/bots/1"), http.get("/bots/1/audit"),
                 http.post("/bots/1/start", headers=headers), http.get("/runs"),
                 http.post("/backtests", headers=headers, json={
                     "strategy": "sma_crossover", "params": {}, "symbol": "BTCUSDT", "interval": "1m",
                     "from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"})]
        for call in calls:
            response = await call
            assert response.status_code == 503, (response.request.url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "/problems/database-unavailable"


def test_services_are_typed_fields_started_in_a_declared_order():
    """No string-keyed service locator: AppContext.services is a dataclass of typed, optional fields; the
    starters run in one declared order (the deploy controller needs the reconciler's leader)."""
    import dataclasses

    from gordon_manager.app import service_starters
    from gordon_manager.context import Services

    names = [f.name for f in dataclasses.fields(Services)]
    assert names.index("leader") < names.index("deploy_controller")
    assert all(f.default is None for f in dataclasses.fields(Services))
    order = [starter.__module__ for starter in service_starters()]
    assert order.index("gordon_manager.reconcile.start") < order.index("gordon_manager.deploys.start")
    services = Services()
    assert services.running() == []
    with __import__("pytest").raises(AttributeError):
        services.nonexistent  # noqa: B018 - a typo is an error, not a silent None
