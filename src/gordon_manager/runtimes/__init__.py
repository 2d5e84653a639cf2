"""Runtimes: where bot workloads run (local processes, Docker containers, Swarm services)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from gordon_manager.runtimes.base import (
    LABEL_BOT_ID,
    LABEL_CONFIG_VERSION,
    LABEL_MANAGED,
    LABEL_RUNTIME,
    Observed,
    Runtime,
    RuntimeConfigError,
    RuntimeEvent,
    RuntimeFailure,
    RuntimeUnavailable,
    WorkloadNotFound,
    WorkloadSpec,
)
from gordon_manager.runtimes.docker import DockerRuntime
from gordon_manager.runtimes.payload import PayloadPolicy
from gordon_manager.runtimes.process import ProcessRuntime
from gordon_manager.runtimes.swarm import SwarmRuntime

RUNTIME_KINDS = ("process", "docker", "swarm")


def create_runtime(
    *,
    kind: str,
    state_dir: str | os.PathLike[str] | None = None,
    proxy_url: str | None = None,
    allowed_images: Sequence[str] = (),
    network: str = "none",
    readonly_rootfs: bool = False,
    timeout_s: float = 10.0,
    stop_timeout_s: int = 10,
    bot_cgroup: str | os.PathLike[str] | None = None,
) -> Runtime:
    """Build the runtime named by `kind` from plain settings values."""
    if kind == "process":
        if state_dir is None:
            raise RuntimeConfigError("the process runtime needs a state_dir")
        return ProcessRuntime(state_dir=state_dir, cgroup=bot_cgroup)
    if kind in ("docker", "swarm"):
        if not proxy_url:
            raise RuntimeConfigError(f"the {kind} runtime needs DOCKER_SOCKET_PROXY_URL")
        policy = PayloadPolicy(
            allowed_images=tuple(allowed_images), network=network, readonly_rootfs=readonly_rootfs,
            stop_timeout_s=stop_timeout_s,
        )
        cls = DockerRuntime if kind == "docker" else SwarmRuntime
        return cls(proxy_url=proxy_url, policy=policy, timeout_s=timeout_s)
    raise RuntimeConfigError(f"unknown runtime kind {kind!r}; expected one of {RUNTIME_KINDS}")


__all__ = [
    "LABEL_BOT_ID",
    "LABEL_CONFIG_VERSION",
    "LABEL_MANAGED",
    "LABEL_RUNTIME",
    "RUNTIME_KINDS",
    "DockerRuntime",
    "Observed",
    "PayloadPolicy",
    "ProcessRuntime",
    "Runtime",
    "RuntimeConfigError",
    "RuntimeEvent",
    "RuntimeFailure",
    "RuntimeUnavailable",
    "SwarmRuntime",
    "WorkloadNotFound",
    "WorkloadSpec",
    "create_runtime",
]
