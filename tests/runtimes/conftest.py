"""Session fixtures for runtime tests: one real dockerd behind the real haproxy socket proxy.

The daemon starts lazily (only when a docker/swarm test asks for it) and is torn down at session
end, including after failures. Swarm mode is switched on only when a swarm test runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gordon_manager.runtimes import DockerRuntime, PayloadPolicy, ProcessRuntime, SwarmRuntime
from tests.infra import DockerStack
from tests.infra import fixtures as docker_fixtures
from tests.runtimes.helpers import EventCollector


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs root, Debian dockerd and haproxy (ci/install-system-deps.sh)"
    )
    # Registered as a plugin (not imported into this conftest) so its session fixtures are global:
    # if the root conftest also lists it in pytest_plugins, the session still runs one dockerd.
    if not config.pluginmanager.is_registered(docker_fixtures):
        config.pluginmanager.register(docker_fixtures, "tests.infra.fixtures")


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
