"""DockerRuntime against a real dockerd behind the real haproxy docker-socket-proxy."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gordon_manager.runtimes import (
    DockerRuntime,
    PayloadPolicy,
    RuntimeConfigError,
    RuntimeUnavailable,
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
        cpu_limit=0.5,
        memory_limit_mb=64,
    )


def containers_of(raw: httpx.Client, bot_id: int) -> list[dict]:
    filters = json.dumps({"label": ["gordon.managed=true", f"gordon.bot_id={bot_id}"]})
    return raw.get("/containers/json", params={"all": "1", "filters": filters}).json()


def logs_of(raw: httpx.Client, container_id: str) -> bytes:
    return raw.get(f"/containers/{container_id}/logs", params={"stdout": "1"}).content


async def test_start_creates_a_running_locked_down_container(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    started = await docker_runtime.start(spec(1, bot_image))
    assert started.state == "running" and started.config_version == 1 and started.started_at is not None
    body = docker_raw.get(f"/containers/{started.workload_id}/json").json()
    host = body["HostConfig"]
    assert body["Name"] == "/gordon-bot-1"
    assert body["Config"]["Labels"]["gordon.managed"] == "true"
    assert host["Privileged"] is False and host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 64 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] == "no" and not host.get("Binds")
    observed = await docker_runtime.observe()
    assert observed[1].workload_id == started.workload_id and observed[1].state == "running"


async def test_killed_container_is_reported_died_within_two_seconds(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client, collect_events
) -> None:
    events = collect_events(docker_runtime)
    started = await docker_runtime.start(spec(2, bot_image))
    await events.wait_for(bot_id=2, kind="started")
    docker_raw.post(f"/containers/{started.workload_id}/kill").raise_for_status()  # the outside world
    died = await events.wait_for(bot_id=2, kind="died", timeout_s=2.0)
    assert died.workload_id == started.workload_id
    observed = (await docker_runtime.observe())[2]
    assert observed.state == "exited" and observed.exit_code == 137
    restarted = await docker_runtime.start(spec(2, bot_image))
    assert restarted.workload_id == started.workload_id and restarted.state == "running"
    await docker_runtime.remove(2)
    await events.wait_for(bot_id=2, kind="removed")


async def test_restarted_manager_adopts_and_never_duplicates(
    docker_env: DockerStack,
    docker_runtime: DockerRuntime,
    bot_policy: PayloadPolicy,
    bot_image: str,
    docker_raw: httpx.Client,
) -> None:
    started = await docker_runtime.start(spec(3, bot_image))
    await docker_runtime.close()
    fresh = DockerRuntime(proxy_url=docker_env.proxy_url, policy=bot_policy)
    other = DockerRuntime(proxy_url=docker_env.proxy_url, policy=bot_policy)
    try:
        assert (await fresh.observe())[3].workload_id == started.workload_id
        adopted = await fresh.start(spec(3, bot_image))
        assert adopted.workload_id == started.workload_id
        assert len(containers_of(docker_raw, 3)) == 1
        # Two managers racing to create the same new bot: the deterministic name makes one get 409.
        results = await asyncio.gather(fresh.start(spec(30, bot_image)), other.start(spec(30, bot_image)))
        assert results[0].workload_id == results[1].workload_id
        assert len(containers_of(docker_raw, 30)) == 1
    finally:
        await fresh.close()
        await other.close()


async def test_new_config_version_replaces_the_container(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    first = await docker_runtime.start(spec(4, bot_image))
    second = await docker_runtime.start(spec(4, bot_image, version=2))
    assert second.workload_id != first.workload_id and second.config_version == 2
    remaining = containers_of(docker_raw, 4)
    assert [c["Id"] for c in remaining] == [second.workload_id]


async def test_stop_and_remove_are_idempotent(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    await docker_runtime.start(spec(5, bot_image))
    await docker_runtime.stop(5, timeout_s=2)
    assert (await docker_runtime.observe())[5].state == "exited"
    await docker_runtime.stop(5)
    await docker_runtime.remove(5)
    assert 5 not in await docker_runtime.observe()
    assert containers_of(docker_raw, 5) == []
    await docker_runtime.remove(5)
    await docker_runtime.stop(5)


async def test_signal_reaches_the_bot(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    started = await docker_runtime.start(
        spec(6, bot_image, 'trap "echo got-usr1" USR1; echo trap-ready; ' + LOOP)
    )
    # The trap is in place before the signal (an untrapped USR1 would kill the shell).
    await wait_for(lambda: b"trap-ready" in logs_of(docker_raw, started.workload_id), timeout=20)
    await docker_runtime.signal(6, "SIGUSR1")
    await wait_for(lambda: b"got-usr1" in logs_of(docker_raw, started.workload_id), timeout=20)
    await docker_runtime.stop(6, timeout_s=1)
    with pytest.raises(WorkloadNotFound):
        await docker_runtime.signal(6, "SIGUSR1")
    with pytest.raises(RuntimeConfigError):
        await docker_runtime.signal(6, "SIGBOGUS")


async def test_proxy_down_is_runtime_unavailable_and_recovers(
    docker_runtime: DockerRuntime,
    socket_proxy: SocketProxy,
    bot_image: str,
    collect_events,
    docker_raw: httpx.Client,
) -> None:
    events = collect_events(docker_runtime)
    started = await docker_runtime.start(spec(7, bot_image))
    await events.wait_for(bot_id=7, kind="started")
    socket_proxy.stop()
    with pytest.raises(RuntimeUnavailable):
        await docker_runtime.ping()
    with pytest.raises(RuntimeUnavailable):
        await docker_runtime.observe()
    with pytest.raises(RuntimeUnavailable):
        await docker_runtime.start(spec(8, bot_image))
    # The bot died while we were blind: the resumed stream (since=last event) must still report it.
    docker_raw.post(f"/containers/{started.workload_id}/kill").raise_for_status()
    # The death has happened (seen on the raw socket) before the proxy comes back.
    inspect = f"/containers/{started.workload_id}/json"
    await wait_for(lambda: docker_raw.get(inspect).json()["State"]["Status"] == "exited", timeout=20)
    socket_proxy.start()
    await docker_runtime.ping()
    assert (await docker_runtime.observe())[7].state == "exited"
    await events.wait_for(bot_id=7, kind="died", timeout_s=5.0)


async def test_image_outside_the_allow_list_is_refused(
    docker_runtime: DockerRuntime, docker_raw: httpx.Client
) -> None:
    with pytest.raises(RuntimeConfigError):
        await docker_runtime.start(spec(9, "evil/miner:latest"))
    with pytest.raises(RuntimeConfigError):
        await docker_runtime.start(spec(9, "gordon-bot-evil:test"))
    assert containers_of(docker_raw, 9) == []


async def test_missing_image_is_a_config_error(
    docker_runtime: DockerRuntime, docker_raw: httpx.Client
) -> None:
    with pytest.raises(RuntimeConfigError, match=r"(?i)no such image"):
        await docker_runtime.start(spec(10, "gordon-bot:does-not-exist"))
    assert containers_of(docker_raw, 10) == []


async def test_name_taken_by_a_foreign_container_is_not_touched(
    docker_runtime: DockerRuntime, bot_image: str, docker_raw: httpx.Client
) -> None:
    created = docker_raw.post(
        "/containers/create",
        params={"name": "gordon-bot-11"},
        json={"Image": bot_image, "Cmd": ["/bin/sleep", "30"], "HostConfig": {"NetworkMode": "none"}},
    )
    created.raise_for_status()
    foreign = created.json()["Id"]
    try:
        with pytest.raises(RuntimeConfigError, match="does not manage"):
            await docker_runtime.start(spec(11, bot_image))
        assert docker_raw.get(f"/containers/{foreign}/json").status_code == 200
        assert 11 not in await docker_runtime.observe()
    finally:
        docker_raw.delete(f"/containers/{foreign}", params={"force": "1"})


async def test_crashing_bot_reports_exit_code(
    docker_runtime: DockerRuntime, bot_image: str, collect_events
) -> None:
    events = collect_events(docker_runtime)
    await docker_runtime.start(spec(12, bot_image, "exit 3"))
    await events.wait_for(bot_id=12, kind="died", timeout_s=2.0)
    observed = await wait_for_state(docker_runtime, 12, "exited")
    assert observed.exit_code == 3


async def test_close_ends_the_event_stream(
    docker_env: DockerStack, docker_clean: None, bot_policy: PayloadPolicy, bot_image: str
) -> None:
    runtime = DockerRuntime(proxy_url=docker_env.proxy_url, policy=bot_policy)
    stream = runtime.events()
    first = asyncio.ensure_future(stream.__anext__())
    await runtime.start(spec(13, bot_image))
    # An event came through: the stream is connected, its /events response open, when close() comes.
    assert (await asyncio.wait_for(first, timeout=10)).kind == "started"
    pending = asyncio.ensure_future(stream.__anext__())
    await runtime.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, timeout=5)
