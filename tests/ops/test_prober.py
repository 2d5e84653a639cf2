"""Stack health: the prober against real peers (Postgres, nats-server, haproxy socket proxy in
front of dockerd, Prometheus, AlertManager) and gordon-risk's stand-in, each also going down."""

from __future__ import annotations

import asyncio
from functools import partial

import asyncpg
import pytest

from gordon_manager.health.state import HealthState
from gordon_manager.observability import metrics
from gordon_manager.observability.prober import Peer, StackProber, nats_servers, probe_nats, probe_postgres
from tests.conftest import create_database, wait_for
from tests.infra import docker_stack
from tests.ops.conftest import RISK_FORWARD_TOKEN, closed_port_url
from tests.ops.peers import NatsServer, start_alertmanager, start_prometheus

ALL_PEERS = {"postgres", "nats", "docker_socket_proxy", "prometheus", "alertmanager", "gordon_risk"}


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def health(client) -> dict:
    response = await client.get("/healthz")
    assert response.status_code == 200
    return response.json()


def down_peers(body: dict) -> set[str]:
    return set(body.get("degradedDetails", {}).get("peer_down", {}))


@pytest.mark.docker
async def test_every_configured_peer_is_probed_and_outages_degrade_healthz(ops_app, fake_risk, prom_stack, tmp_path):
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    try:
        with docker_stack(image_repo="gordon-bot", image_tag="ops") as stack:
            async with ops_app(
                stack_health_interval_s=0.2, bus_nats_url=nats.url, docker_socket_proxy_url=stack.proxy_url,
                peers={"gordon_prometheus_url": prom_stack.prometheus.url,
                       "gordon_alertmanager_url": prom_stack.alertmanager.url,
                       "gordon_risk_url": fake_risk.url, "gordon_risk_operator_token": RISK_FORWARD_TOKEN},
            ) as (_app, client):

                async def all_up():
                    body = await health(client)
                    peers = body["checks"].get("peers", {})
                    return body if set(peers) == ALL_PEERS and all(p["ok"] for p in peers.values()) else None

                body = await wait_for(all_up, timeout=10)
                assert body["status"] == "ok" and body["degraded"] == []
                assert body["checks"]["peers"]["nats"]["outcome"] == "ok"
                down_before = counter("gordon_manager_stack_health_transitions_total", peer="nats", to="down")
                up_before = counter("gordon_manager_stack_health_transitions_total", peer="nats", to="up")

                nats.stop()
                stack.proxy.stop()

                async def both_down():
                    body = await health(client)
                    return body if down_peers(body) == {"nats", "docker_socket_proxy"} else None

                body = await wait_for(both_down, timeout=10)
                assert body["status"] == "degraded" and body["degraded"] == ["peer_down"]
                assert body["checks"]["peers"]["nats"]["ok"] is False
                assert "Connect call failed" in body["degradedDetails"]["peer_down"]["nats"] or \
                    "refused" in body["degradedDetails"]["peer_down"]["nats"].lower()
                assert "docker_socket_proxy is unreachable" in body["degradedDetails"]["peer_down"][
                    "docker_socket_proxy"]
                assert counter("gordon_manager_stack_health_transitions_total", peer="nats", to="down") == \
                    down_before + 1
                assert counter("gordon_manager_stack_health_peer_up", peer="nats") == 0

                nats.start()
                stack.proxy.start()

                async def recovered():
                    body = await health(client)
                    return body if body["status"] == "ok" else None

                await wait_for(recovered, timeout=10)
                assert counter("gordon_manager_stack_health_transitions_total", peer="nats", to="up") == up_before + 1
                assert counter("gordon_manager_stack_health_probes_total", peer="nats", outcome="error") >= 1
    finally:
        nats.stop()


async def test_prometheus_and_alertmanager_outage_and_recovery(ops_app, tmp_path):
    prometheus = start_prometheus(tmp_path / "prom", config_text="global:\n  scrape_interval: 1s\n")
    alertmanager = start_alertmanager(tmp_path / "am")
    try:
        async with ops_app(stack_health_interval_s=0.2, peers={"gordon_prometheus_url": prometheus.url,
                                                               "gordon_alertmanager_url": alertmanager.url}) as (
                _app, client):
            await wait_for(lambda: _peer_set(client, {"postgres", "prometheus", "alertmanager"}), timeout=10)
            prometheus.stop()
            alertmanager.stop()

            async def down():
                body = await health(client)
                return body if down_peers(body) == {"prometheus", "alertmanager"} else None

            body = await wait_for(down, timeout=10)
            assert body["status"] == "degraded"
            prometheus.start()
            alertmanager.start()

            async def up():
                return (await health(client))["status"] == "ok"

            await wait_for(up, timeout=10)
    finally:
        prometheus.stop()
        alertmanager.stop()


async def _peer_set(client, expected: set[str]) -> bool:
    body = await health(client)
    peers = body["checks"].get("peers", {})
    return set(peers) == expected and all(p["ok"] for p in peers.values())


async def test_gordon_risk_down_from_the_start_and_unhealthy(ops_app, fake_risk):
    before = counter("gordon_manager_stack_health_transitions_total", peer="gordon_risk", to="down")
    async with ops_app(stack_health_interval_s=3600, peers={"gordon_risk_url": closed_port_url()}) as (_app, client):
        body = await wait_for(lambda: _degraded(client), timeout=5)
        assert "gordon_risk is unreachable" in body["degradedDetails"]["peer_down"]["gordon_risk"]
    # Presumed up at start: a first probe that finds it down is a transition.
    assert counter("gordon_manager_stack_health_transitions_total", peer="gordon_risk", to="down") == before + 1
    fake_risk.mode = "unhealthy"
    async with ops_app(stack_health_interval_s=3600, peers={"gordon_risk_url": fake_risk.url}) as (_app, client):
        body = await wait_for(lambda: _degraded(client), timeout=5)
        assert body["degradedDetails"]["peer_down"]["gordon_risk"] == "GET /healthz answered 503"


async def _degraded(client) -> dict | None:
    body = await health(client)
    return body if body["status"] == "degraded" else None


async def test_only_configured_peers_are_probed(ops_app):
    async with ops_app() as (_app, client):
        body = await wait_for(lambda: _peer_set(client, {"postgres"}), timeout=5)
    assert body is True


async def test_postgres_down_is_reported(pg_server_url):
    db = await create_database(pg_server_url, migrated=False)
    pool = await asyncpg.create_pool(db.admin_url, min_size=1, max_size=1)
    state = HealthState()
    prober = StackProber(peers=[Peer("postgres", partial(probe_postgres, pool))], health=state, interval=60,
                         timeout_s=2)
    try:
        await prober.run_once()
        assert state.degraded == [] and state.checks["peers"]["postgres"]["ok"] is True
        conn = await asyncpg.connect(pg_server_url)
        await conn.execute(f'DROP DATABASE "{db.name}" WITH (FORCE)')
        await conn.close()
        await prober.run_once()
        assert state.degraded == ["peer_down"]
        assert state.checks["peers"]["postgres"]["outcome"] == "error"
    finally:
        pool.terminate()


async def test_nats_probe_times_out_on_a_server_that_does_not_greet(fake_risk):
    state = HealthState()
    port = int(fake_risk.url.rsplit(":", 1)[1])  # an HTTP server waits for a request: no INFO greeting
    prober = StackProber(peers=[Peer("nats", partial(probe_nats, f"nats://127.0.0.1:{port}"))], health=state,
                         interval=60, timeout_s=0.3)
    await asyncio.wait_for(prober.run_once(), timeout=3)
    assert state.checks["peers"]["nats"]["outcome"] == "timeout"
    assert state.details()["peer_down"]["nats"] == "no answer within 0.3s"


def test_nats_url_lists():
    assert nats_servers("nats://a:4223, nats://b") == [("a", 4223), ("b", 4222)]
    assert nats_servers("127.0.0.1:5000") == [("127.0.0.1", 5000)]
    assert nats_servers(" , ") == []
