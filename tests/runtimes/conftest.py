"""Session fixtures for runtime tests: one real dockerd behind the real haproxy socket proxy.

The daemon starts lazily (only when a docker/swarm test asks for it) and is torn down at session
end, including after failures. Swarm mode is switched on only when a swarm test runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gordon_manager.runtimes import DockerRuntime, PayloadPolicy, ProcessRuntime, SwarmRuntime
from tests.infra import DockerStack, SocketProxy, docker_stack, remove_managed
from tests.runtimes.helpers import EventCollector


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs root, Debian dockerd and haproxy (ci/install-system-deps.sh)"
    )


@pytest.fixture(scope="session")
def docker_env() -> Iterator[DockerStack]:
    """dockerd + haproxy docker-socket-proxy + the gordon-bot:test busybox image, for the session."""
    with docker_stack(image_repo="gordon-bot", image_tag="test") as stack:
        yield stack


@pytest.fixture(scope="session")
def swarm_env(docker_env: DockerStack) -> DockerStack:
    """The session stack with swarm mode initialised (single manager on 127.0.0.1)."""
    docker_env.init_swarm()
    return docker_env


@pytest.fixture
def socket_proxy(docker_env: DockerStack) -> SocketProxy:
    """The haproxy handle, for outage tests (stop()/start())."""
    return docker_env.proxy


@pytest.fixture
def docker_raw(docker_env: DockerStack) -> httpx.Client:
    """A client on the raw daemon socket: the "outside world" that kills containers behind our back."""
    return docker_env.raw


@pytest.fixture
def bot_image(docker_env: DockerStack) -> str:
    """The local busybox image allowed by bot_policy."""
    return docker_env.image


@pytest.fixture
def bot_policy() -> PayloadPolicy:
    """Payload policy used in tests: gordon-bot images only, no network."""
    return PayloadPolicy(allowed_images=("gordon-bot",), network="none", stop_timeout_s=2)


@pytest.fixture
def docker_clean(docker_env: DockerStack) -> Iterator[None]:
    """Bring the proxy back if a test stopped it, and delete every gordon workload after the test."""
    yield
    if not docker_env.proxy.running:
        docker_env.proxy.start()
    remove_managed(docker_env.raw)


@pytest.fixture
async def docker_runtime(
    docker_env: DockerStack, docker_clean: None, bot_policy: PayloadPolicy
) -> AsyncIterator[DockerRuntime]:
    """A DockerRuntime talking to the session proxy."""
    runtime = DockerRuntime(
        proxy_url=docker_env.proxy_url, policy=bot_policy, timeout_s=5.0, reconnect_delay_s=0.2
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def swarm_runtime(
    swarm_env: DockerStack, docker_clean: None, bot_policy: PayloadPolicy
) -> AsyncIterator[SwarmRuntime]:
    """A SwarmRuntime talking to the session proxy."""
    runtime = SwarmRuntime(
        proxy_url=swarm_env.proxy_url, policy=bot_policy, timeout_s=5.0, reconnect_delay_s=0.2
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def process_runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    """A ProcessRuntime with a per-test state dir; every bot it knows is removed afterwards."""
    runtime = ProcessRuntime(state_dir=tmp_path / "proc-state", poll_interval_s=0.05)
    yield runtime
    for bot_id in list(await runtime.observe()):
        await runtime.remove(bot_id)
    await runtime.close()


@pytest.fixture
async def collect_events() -> AsyncIterator:
    """Factory: collect_events(runtime) starts consuming runtime.events(); stopped after the test."""
    collectors: list[EventCollector] = []

    def start(runtime) -> EventCollector:
        collector = EventCollector(runtime.events())
        collectors.append(collector)
        return collector

    yield start
    for collector in collectors:
        await collector.stop()
