"""SwarmRuntime against a real single-node swarm behind the real socket proxy."""

from __future__ import annotations

import json

import httpx
import pytest

from gordon_manager.runtimes import (
    PayloadPolicy,
    RuntimeConfigError,
    RuntimeUnavailable,
    SwarmRuntime,
    WorkloadNotFound,
    WorkloadSpec,
)
from tests.conftest import wait_for
from tests.infra import DockerStack, SocketProxy
from tests.runtimes.helpers import wait_for_state

pytestmark = pytest.mark.docker

LOOP = "while :; do sleep 0.1; done"


def spec(bot_id: int, image: str, script: str = LOOP, *, version: int = 1) -> WorkloadSpec:
    return WorkloadSpec(
        bot_id=bot_id,
        config_version=version,
        name=f"gordon-bot-{bot_id}",
        image=image,
        command=("/bin/sh", "-c", script),
        env={"GORDON_BOT_ID": str(bot_id)},
        cpu_limit=0.25,
        memory_limit_mb=32,
    )


def services_of(raw: httpx.Client, bot_id: int) -> list[dict]:
    filters = json.dumps({"label": ["gordon.managed=true", f"gordon.bot_id={bot_id}"]})
    return raw.get("/services", params={"filters": filters}).json()


async def test_start_runs_a_one_replica_service_then_remove_deletes_it(
    swarm_runtime: SwarmRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    await swarm_runtime.ping()
    started = await swarm_runtime.start(spec(101, bot_image))
    assert started.config_version == 1 and started.state in ("starting", "running")
    running = await wait_for_state(swarm_runtime, 101, "running")
    assert running.workload_id == started.workload_id and running.started_at is not None
    (service,) = services_of(docker_raw, 101)
    assert service["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
    container = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert not container.get("Mounts") and container["CapabilityDrop"] == ["ALL"]
    assert service["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"] == "none"
    await swarm_runtime.remove(101)
    assert 101 not in await swarm_runtime.observe()
    assert services_of(docker_raw, 101) == []
    await swarm_runtime.remove(101)


async def test_adopts_after_restart_and_updates_versions_in_place(
    swarm_env: DockerStack,
    swarm_runtime: SwarmRuntime,
    bot_policy: PayloadPolicy,
    bot_image: str,
    docker_raw: httpx.Client,
) -> None:
    first = await swarm_runtime.start(spec(102, bot_image))
    fresh = SwarmRuntime(proxy_url=swarm_env.proxy_url, policy=bot_policy)
    try:
        assert (await fresh.start(spec(102, bot_image))).workload_id == first.workload_id
        assert len(services_of(docker_raw, 102)) == 1
        updated = await fresh.start(spec(102, bot_image, version=2))
        assert updated.workload_id == first.workload_id and updated.config_version == 2
        observed = await wait_for_state(fresh, 102, "running", version=2)
        assert observed.workload_id == first.workload_id
        assert len(services_of(docker_raw, 102)) == 1
    finally:
        await fresh.close()


async def test_stop_scales_to_zero_and_start_brings_it_back(
    swarm_runtime: SwarmRuntime, bot_image: str
) -> None:
    await swarm_runtime.start(spec(103, bot_image))
    await wait_for_state(swarm_runtime, 103, "running")
    await swarm_runtime.stop(103, timeout_s=1)
    await wait_for_state(swarm_runtime, 103, "exited")
    await swarm_runtime.stop(103)
    await swarm_runtime.start(spec(103, bot_image))
    await wait_for_state(swarm_runtime, 103, "running")


async def test_dead_task_is_reported_and_restarted_by_start(
    swarm_runtime: SwarmRuntime, bot_image: str, docker_raw: httpx.Client, collect_events
) -> None:
    events = collect_events(swarm_runtime)
    started = await swarm_runtime.start(spec(104, bot_image))
    await wait_for_state(swarm_runtime, 104, "running")
    filters = json.dumps({"label": ["gordon.bot_id=104"]})
    (container,) = docker_raw.get("/containers/json", params={"filters": filters}).json()
    docker_raw.post(f"/containers/{container['Id']}/kill").raise_for_status()
    died = await events.wait_for(bot_id=104, kind="died", timeout_s=2.0)
    assert died.workload_id == started.workload_id
    await wait_for_state(swarm_runtime, 104, "exited")
    restarted = await swarm_runtime.start(spec(104, bot_image))
    assert restarted.workload_id == started.workload_id
    await wait_for_state(swarm_runtime, 104, "running")


async def test_signal_reaches_a_local_task(
    swarm_runtime: SwarmRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    await swarm_runtime.start(spec(105, bot_image, 'trap "echo got-usr2" USR2; echo trap-ready; ' + LOOP))
    with pytest.raises(WorkloadNotFound):
        await swarm_runtime.signal(999, "SIGUSR2")
    await wait_for_state(swarm_runtime, 105, "running")
    filters = json.dumps({"label": ["gordon.bot_id=105"]})
    (container,) = docker_raw.get("/containers/json", params={"filters": filters}).json()

    def logs() -> bytes:
        return docker_raw.get(f"/containers/{container['Id']}/logs", params={"stdout": "1"}).content

    # The trap is in place before the signal (an untrapped USR2 would kill the shell).
    await wait_for(lambda: b"trap-ready" in logs(), timeout=20)
    await swarm_runtime.signal(105, "SIGUSR2")
    await wait_for(lambda: b"got-usr2" in logs(), timeout=20)


async def test_refusals_and_outages(
    swarm_runtime: SwarmRuntime, socket_proxy: SocketProxy, bot_image: str
) -> None:
    with pytest.raises(RuntimeConfigError):
        await swarm_runtime.start(spec(106, "docker.io/library/alpine:3"))
    socket_proxy.stop()
    with pytest.raises(RuntimeUnavailable):
        await swarm_runtime.observe()
    with pytest.raises(RuntimeUnavailable):
        await swarm_runtime.ping()
    socket_proxy.start()
    assert await swarm_runtime.observe() == {}


async def test_missing_image_surfaces_as_task_error(swarm_runtime: SwarmRuntime) -> None:
    # Swarm cannot check images up front (another node may have it); the task is rejected instead.
    await swarm_runtime.start(spec(107, "gordon-bot:does-not-exist"))
    observed = await wait_for_state(swarm_runtime, 107, "exited", timeout_s=15)
    assert observed.error and "does-not-exist" in observed.error
