"""Reusable pytest fixtures for real-Docker tests (import them into a conftest, or list this module
in the root conftest's `pytest_plugins` so the whole session shares one daemon).

Fixtures: docker_env (session: dockerd + haproxy proxy + gordon-bot:test image), swarm_env
(session: same, swarm mode on), socket_proxy, docker_raw, bot_image, bot_policy, docker_clean.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gordon_manager.runtimes import PayloadPolicy
from tests.infra.haproxy import SocketProxy
from tests.infra.stack import DockerStack, docker_stack, remove_managed


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
