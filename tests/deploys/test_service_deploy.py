"""Service deploys on a real dockerd behind the real haproxy socket proxy, with busybox-httpd images:
healthy → swapped in; unhealthy, timed out, exited or aborted → the old container keeps serving."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gordon_manager.db.connect import connect
from gordon_manager.runtimes.base import RuntimeConfigError
from gordon_manager.runtimes.payload import PayloadPolicy
from gordon_manager.runtimes.services import HealthProbe, carried_env, carried_network, service_container_payload
from tests.conftest import make_settings, wait_for
from tests.deploys.conftest import HEADERS
from tests.deploys.images import import_service_image
from tests.reconcile.conftest import running_app

pytestmark = pytest.mark.docker
FAST = {"intervalS": 0.2, "timeoutS": 1, "retries": 2}
HTTP = {"httpPath": "/health", "port": 8080, **FAST}


@pytest.fixture(scope="module")
def images(docker_env):
    raw = docker_env.raw
    return {"v1": import_service_image(raw, repo="gordon-svc", tag="v1", healthy=True),
            "v2": import_service_image(raw, repo="gordon-svc", tag="v2", healthy=True),
            "sick": import_service_image(raw, repo="gordon-svc", tag="sick", healthy=False)}


@pytest.fixture
async def client(ddb, data_dir, docker_env, docker_clean, images):
    settings = make_settings(ddb, data_dir, reconcile_enabled=True, docker_socket_proxy_url=docker_env.proxy_url,
                             allowed_images="gordon-bot,gordon-svc")
    async with running_app(settings) as (_app, http):
        yield http


def service_name() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def deploy(client, service: str, image: str, health: dict, *, until=("done", "failed", "aborted")) -> dict:
    response = await client.post("/deploys/service", headers=HEADERS,
                                 json={"service": service, "image": image, "healthCheck": health})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/deploys/service/{response.json()['id']}/status"
    return await wait_state(client, response.json()["id"], until)


async def wait_state(client, deploy_id: int, states, timeout: float = 20) -> dict:
    async def check():
        body = (await client.get(f"/deploys/service/{deploy_id}/status")).json()
        return body if body["state"] in states else None

    return await wait_for(check, timeout=timeout, interval=0.1)


def inspect(raw: httpx.Client, ref: str) -> dict | None:
    response = raw.get(f"/containers/{ref}/json")
    return None if response.status_code == 404 else response.json()


def serving(raw: httpx.Client, service: str) -> dict:
    """The container named after the service: running and healthy, or the test fails."""
    body = inspect(raw, service)
    assert body is not None, f"nothing serves {service}"
    assert body["State"]["Status"] == "running" and body["State"]["Health"]["Status"] == "healthy"
    assert body["Config"]["Labels"]["gordon.service"] == service
    return body


async def test_a_healthy_image_is_swapped_in_and_the_old_container_removed(client, docker_raw, images):
    service = service_name()
    first = await deploy(client, service, images["v1"], HTTP)
    assert first["state"] == "done", first["reason"]
    assert first["oldContainerId"] is None and first["newImage"] == images["v1"]
    v1 = serving(docker_raw, service)
    assert v1["Id"] == first["newContainerId"] and v1["Config"]["Image"] == images["v1"]
    assert v1["HostConfig"]["Privileged"] is False and v1["HostConfig"]["CapDrop"] == ["ALL"]
    assert v1["Config"]["Healthcheck"]["Test"][:2] == ["CMD", "wget"]

    second = await deploy(client, service, images["v2"], {"command": ["test", "-f", "/www/health"], **FAST})
    assert second["state"] == "done", second
    assert (second["oldContainerId"], second["oldImage"]) == (v1["Id"], images["v1"])
    v2 = serving(docker_raw, service)
    assert v2["Id"] == second["newContainerId"] != v1["Id"] and v2["Config"]["Image"] == images["v2"]
    assert inspect(docker_raw, v1["Id"]) is None  # stopped and removed
    assert v2["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-f", "/www/health"]

    history = (await client.get("/deploys/service", params={"service": service, "limit": 1})).json()
    assert [d["id"] for d in history["items"]] == [second["id"]] and history["nextCursor"]
    rest = (await client.get("/deploys/service", params={"service": service, "cursor": history["nextCursor"],
                                                          "limit": 1})).json()
    assert [d["id"] for d in rest["items"]] == [first["id"]]
    everything = (await client.get("/deploys/service")).json()["items"]
    assert {first["id"], second["id"]} <= {d["id"] for d in everything}


async def test_an_unhealthy_image_fails_and_the_old_one_keeps_serving(client, docker_raw, images):
    service = service_name()
    assert (await deploy(client, service, images["v1"], HTTP))["state"] == "done"
    old = serving(docker_raw, service)
    failed = await deploy(client, service, images["sick"], HTTP)
    assert failed["state"] == "failed" and "unhealthy" in failed["reason"], failed
    assert serving(docker_raw, service)["Id"] == old["Id"]
    done = await wait_for(lambda: _cleaned(client, failed["id"]), timeout=10)
    assert inspect(docker_raw, done["newContainerId"]) is None


async def _cleaned(client, deploy_id):
    body = (await client.get(f"/deploys/service/{deploy_id}/status")).json()
    return body if body["cleanedUpAt"] else None


async def test_abort_mid_way_keeps_the_old_one(client, docker_raw, images):
    service = service_name()
    assert (await deploy(client, service, images["v1"], HTTP))["state"] == "done"
    old = serving(docker_raw, service)
    slow = {"httpPath": "/health", "port": 8080, "intervalS": 30, "timeoutS": 1, "retries": 1}  # first probe at 30 s
    checking = await deploy(client, service, images["v2"], slow, until=("health_checking",))
    busy = await client.post("/deploys/service", headers=HEADERS,
                             json={"service": service, "image": images["v2"], "healthCheck": HTTP})
    assert busy.status_code == 409  # one deploy per service at a time
    aborted = await client.delete(f"/deploys/service/{checking['id']}/abort", headers=HEADERS)
    assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"
    assert aborted.json()["reason"] == "aborted by operator"
    again = await client.delete(f"/deploys/service/{checking['id']}/abort", headers=HEADERS)
    assert again.status_code == 409 and again.json()["currentState"] == "aborted"
    done = await wait_for(lambda: _cleaned(client, checking["id"]), timeout=15)
    assert inspect(docker_raw, done["newContainerId"]) is None
    assert serving(docker_raw, service)["Id"] == old["Id"]


async def test_timeout_and_a_dead_candidate_fail(client, docker_raw, images):
    service = service_name()
    assert (await deploy(client, service, images["v1"], HTTP))["state"] == "done"
    old = serving(docker_raw, service)
    never = {"httpPath": "/health", "port": 8080, "intervalS": 60, "timeoutS": 1, "retries": 1, "waitS": 1}
    timed_out = await deploy(client, service, images["v2"], never)
    assert timed_out["state"] == "failed" and "timed out" in timed_out["reason"]
    slow = {"httpPath": "/health", "port": 8080, "intervalS": 60, "timeoutS": 1, "retries": 1}
    checking = await deploy(client, service, images["v2"], slow, until=("health_checking",))
    docker_raw.post(f"/containers/{checking['newContainerId']}/stop", params={"t": 0})  # dies under our feet
    dead = await wait_state(client, checking["id"], ("failed",))
    assert "exited" in dead["reason"]
    assert serving(docker_raw, service)["Id"] == old["Id"]


async def test_refusals(client, docker_raw, images):
    body = {"service": service_name(), "image": "evil.example/miner:1", "healthCheck": HTTP}
    assert (await client.post("/deploys/service", json=body, headers=HEADERS)).status_code == 422
    body["image"] = "gordon-svc:UPPER CASE"
    assert (await client.post("/deploys/service", json=body, headers=HEADERS)).status_code == 422
    body.update(service="gordon-bot-7", image=images["v1"])
    assert (await client.post("/deploys/service", json=body, headers=HEADERS)).status_code == 422
    # a container the manager does not manage holds the name: never touched, the deploy fails
    foreign = service_name()
    created = docker_raw.post("/containers/create", params={"name": foreign},
                              json={"Image": images["v1"], "Labels": {"owner": "someone-else"}})
    assert created.status_code == 201, created.text
    failed = await deploy(client, foreign, images["v2"], HTTP)
    assert failed["state"] == "failed" and "not a gordon-managed" in failed["reason"]
    assert inspect(docker_raw, foreign)["Id"] == created.json()["Id"]
    docker_raw.delete(f"/containers/{created.json()['Id']}", params={"force": "1"})


async def test_a_restarted_manager_removes_leftover_candidates(ddb, data_dir, docker_env, docker_clean, images):
    admin = await connect(ddb.admin_url)
    try:
        row = await admin.fetchrow("INSERT INTO trading.service_deploys (service, new_image, state, actor)"
                                   " VALUES ('leftover', $1, 'failed', 'test') RETURNING id", images["v2"])
    finally:
        await admin.close()
    labels = {"gordon.managed": "true", "gordon.service": "leftover", "gordon.service_deploy": str(row["id"])}
    created = docker_env.raw.post("/containers/create", params={"name": f"leftover.deploy-{row['id']}"},
                                  json={"Image": images["v2"], "Labels": labels})
    assert created.status_code == 201
    settings = make_settings(ddb, data_dir, reconcile_enabled=True, docker_socket_proxy_url=docker_env.proxy_url,
                             allowed_images="gordon-bot,gordon-svc")
    async with running_app(settings):
        await wait_for(lambda: inspect(docker_env.raw, created.json()["Id"]) is None, timeout=15)


def test_payload_is_built_from_the_allow_list():
    policy = PayloadPolicy(allowed_images=("gordon-svc",))
    probe = HealthProbe.http(path="/health", port=8080, interval_s=1.5, timeout_s=2.5, retries=4)
    payload = service_container_payload(service="gordon-risk", deploy_id=3, image="gordon-svc:1", probe=probe,
                                        policy=policy, env=["A=1"], network="gordon-net")
    assert payload["Healthcheck"] == {"Test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"],
                                      "Interval": 1_500_000_000, "Timeout": 2_500_000_000, "Retries": 4,
                                      "StartPeriod": 0}
    assert payload["Labels"] == {"gordon.managed": "true", "gordon.service": "gordon-risk",
                                 "gordon.service_deploy": "3"}
    assert payload["HostConfig"]["NetworkMode"] == "gordon-net" and payload["NetworkDisabled"] is False
    assert payload["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    for bad in (dict(image="evil/x:1"), dict(service="X"), dict(env=["1BAD=x"]), dict(env=["NOEQUALS"]),
                dict(network="host"), dict(network="container:abc")):
        args = dict(service="gordon-risk", deploy_id=3, image="gordon-svc:1", probe=probe, policy=policy) | bad
        with pytest.raises(RuntimeConfigError):
            service_container_payload(**args)
    with pytest.raises(RuntimeConfigError):
        HealthProbe.command([""]).payload()


def test_only_what_the_operator_set_carries_over():
    container = {"Config": {"Env": ["PATH=/bin", "DB_URL=postgres://x", "bad key=1"]},
                 "HostConfig": {"NetworkMode": "gordon-net"}}
    image = {"Config": {"Env": ["PATH=/bin"]}}
    assert carried_env(container, image) == ["DB_URL=postgres://x"]
    assert carried_env(None, image) == [] and carried_env(container, None) == ["PATH=/bin", "DB_URL=postgres://x"]
    policy = PayloadPolicy(allowed_images=("gordon-svc",))
    assert carried_network(container, policy) == "gordon-net"
    for mode in ("host", "container:abc", "default", "bridge", ""):
        assert carried_network({"HostConfig": {"NetworkMode": mode}}, policy) == "none"
