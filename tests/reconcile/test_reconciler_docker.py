"""The reconciler through the Docker and Swarm runtimes, on a real dockerd behind a real haproxy
socket proxy: create → running, kill → restarted, crash-loop → quarantined, manager restart →
adopted (no duplicate), proxy down → bot unchanged and errors counted, then recovery."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from gordon_manager.observability import metrics
from tests.conftest import TEST_OPERATOR_TOKEN, create_database, wait_for
from tests.reconcile.conftest import reconcile_settings, running_app

HEADERS = {"X-Operator-Token": TEST_OPERATOR_TOKEN}
pytestmark = pytest.mark.usefixtures("docker_clean")


@pytest.fixture
async def ddb(pg_server_url):
    return await create_database(pg_server_url)


def docker_settings(db, data_dir, log_dir, docker_env, *, runtime="docker", command="sleep 1000000", **kw):
    return reconcile_settings(db, data_dir, log_dir, runtime=runtime, docker_socket_proxy_url=docker_env.proxy_url,
                              allowed_images="gordon-bot", bot_image=docker_env.image, bot_command=command,
                              bot_network="none", **kw)


def containers(raw, bot_id: int) -> list[dict]:
    filters = json.dumps({"label": [f"gordon.bot_id={bot_id}", "gordon.managed=true"]})
    return raw.get("/containers/json", params={"all": "1", "filters": filters}).json()


async def new_bot(client, **overrides) -> int:
    body = {"name": f"d-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
            "desiredState": "running"}
    body.update(overrides)
    response = await client.post("/bots", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def status(client, bot_id):
    return (await client.get(f"/bots/{bot_id}")).json()["status"]


def state_is(client, bot_id, wanted):
    async def check():
        st = await status(client, bot_id)
        return st["observedState"] == wanted and st

    return check


def _leader_ticks() -> float:
    samples = (s for m in metrics.RECONCILE_TICKS.collect() for s in m.samples)
    return sum(s.value for s in samples if s.name.endswith("_total"))


async def passes_as_leader(reconciler, n: int = 3, timeout: float = 20) -> None:
    """Wait for ``n`` whole reconcile passes run as leader, all begun after this call: what a check that
    something does *not* happen waits for (a pass already under way may have read the state before)."""
    done, ticks = reconciler.iterations + 1, _leader_ticks()
    await wait_for(lambda: reconciler.iterations >= done + n and _leader_ticks() >= ticks + n,
                   timeout=timeout)


async def test_docker_lifecycle_kill_restart_adopt(ddb, data_dir, log_dir, docker_env):
    raw = docker_env.raw
    settings = docker_settings(ddb, data_dir, log_dir, docker_env)
    async with running_app(settings) as (app, client):
        bot_id = await new_bot(client)
        st = await wait_for(state_is(client, bot_id, "running"), timeout=20)
        listed = containers(raw, bot_id)
        assert len(listed) == 1 and listed[0]["State"] == "running"
        assert listed[0]["Labels"]["gordon.config_version"] == "1"
        first = listed[0]["Id"]
        assert st["workloadId"] == first

        killed = time.monotonic()
        raw.post(f"/containers/{first}/kill")
        await wait_for(lambda: _running(raw, bot_id), timeout=10, interval=0.02)
        restart_s = time.monotonic() - killed
        assert restart_s <= 2.0, f"killed container back after {restart_s:.2f}s"
        await wait_for(lambda: _restarts_at_least(client, bot_id, 1))
    # manager restart: the running container is adopted, never duplicated
    async with running_app(settings) as (app, client):
        reconciler = app.state.ctx.services.reconciler
        await wait_for(lambda: reconciler.iterations >= 3 and reconciler.leader.is_leader)
        await passes_as_leader(reconciler)  # each would have started a duplicate
        listed = containers(raw, bot_id)
        assert len(listed) == 1 and listed[0]["State"] == "running"
        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        await wait_for(state_is(client, bot_id, "stopped"), timeout=20)
        assert all(c["State"] != "running" for c in containers(raw, bot_id))
        await client.delete(f"/bots/{bot_id}", headers=HEADERS)
        await wait_for(lambda: not containers(raw, bot_id), timeout=20)


async def _restarts_at_least(client, bot_id, n) -> bool:
    return (await status(client, bot_id))["restarts"] >= n


def _running(raw, bot_id: int) -> bool:
    return any(c["State"] == "running" for c in containers(raw, bot_id))


async def test_docker_crash_loop_is_quarantined(ddb, data_dir, log_dir, docker_env):
    settings = docker_settings(ddb, data_dir, log_dir, docker_env, command='sh -c "exit 3"')
    async with running_app(settings) as (app, client):
        bot_id = await new_bot(client)
        st = await wait_for(state_is(client, bot_id, "quarantined"), timeout=30)
        assert "crash-looping" in st["quarantineReason"] and "exit code 3" in st["quarantineReason"]


async def test_proxy_down_leaves_bots_unchanged_counts_errors_then_recovers(ddb, data_dir, log_dir, docker_env):
    raw = docker_env.raw
    settings = docker_settings(ddb, data_dir, log_dir, docker_env)
    async with running_app(settings) as (app, client):
        bot_id = await new_bot(client)
        await wait_for(state_is(client, bot_id, "running"), timeout=20)
        before = _errors()
        reconciler = app.state.ctx.services.reconciler
        docker_env.proxy.stop()
        try:
            passes = reconciler.iterations
            await wait_for(lambda: reconciler.iterations >= passes + 3, timeout=15)
            st = await status(client, bot_id)
            assert st["observedState"] == "running", "an unreachable proxy changes nothing"
            assert _errors() > before
            await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
            await passes_as_leader(reconciler)  # each would have stopped it, had the proxy answered
            assert _running(raw, bot_id), "cannot act while the proxy is down"
        finally:
            docker_env.proxy.start()
        await wait_for(state_is(client, bot_id, "stopped"), timeout=20)
        assert not _running(raw, bot_id)


def _errors() -> float:
    total = 0.0
    for metric in metrics.DOCKER_SOCKET_ERRORS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return total


async def test_unknown_image_is_a_terminal_error(ddb, data_dir, log_dir, docker_env):
    settings = docker_settings(ddb, data_dir, log_dir, docker_env)
    async with running_app(settings) as (app, client):
        bot_id = await new_bot(client, image="gordon-bot:does-not-exist")
        st = await wait_for(state_is(client, bot_id, "error"), timeout=20)
        assert "image" in st["lastError"].lower()
        reconciler = app.state.ctx.services.reconciler
        calls = reconciler.runtime_calls
        await passes_as_leader(reconciler)  # each would have retried it
        assert reconciler.runtime_calls == calls, "a config error is not retried"


async def test_swarm_runtime_runs_a_bot_as_a_service(ddb, data_dir, log_dir, swarm_env):
    settings = docker_settings(ddb, data_dir, log_dir, swarm_env, runtime="swarm")
    async with running_app(settings) as (app, client):
        bot_id = await new_bot(client)
        await wait_for(state_is(client, bot_id, "running"), timeout=40)
        filters = json.dumps({"label": [f"gordon.bot_id={bot_id}"]})
        services = swarm_env.raw.get("/services", params={"filters": filters}).json()
        assert len(services) == 1
        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        await wait_for(state_is(client, bot_id, "stopped"), timeout=40)
        await client.delete(f"/bots/{bot_id}", headers=HEADERS)
        await wait_for(lambda: not swarm_env.raw.get("/services", params={"filters": filters}).json(), timeout=40)
