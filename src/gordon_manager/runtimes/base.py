"""The Runtime protocol: how the reconciler starts, observes and stops bot workloads."""

from __future__ import annotations

import signal as _signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

# Labels (docker/swarm) and record keys (process) that mark a workload as ours.
LABEL_MANAGED = "gordon.managed"
LABEL_BOT_ID = "gordon.bot_id"
LABEL_CONFIG_VERSION = "gordon.config_version"
LABEL_RUNTIME = "gordon.runtime"

STATES = frozenset({"running", "starting", "exited", "created", "restarting", "paused", "missing"})
EVENT_KINDS = frozenset({"died", "stopped", "started", "removed"})  # stopped: we stopped it (process runtime)


class RuntimeFailure(Exception):
    """Base of every error a runtime raises; library errors never leak past a runtime."""


class RuntimeUnavailable(RuntimeFailure):
    """The runtime cannot be reached right now (proxy down, timeout, 5xx, 403): retry with backoff."""


class RuntimeConfigError(RuntimeFailure):
    """The request can never succeed as given (image not allowed or missing, invalid spec): do not retry."""


class WorkloadNotFound(RuntimeFailure):
    """The bot has no live workload to act on (e.g. signalling a stopped bot)."""


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything a runtime needs to run one bot at one config version."""

    bot_id: int
    config_version: int
    name: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cpu_limit: float | None = None
    memory_limit_mb: int | None = None

    def __post_init__(self) -> None:
        # Freeze the caller's containers so a spec can be shared safely between tasks.
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", dict(self.env))


@dataclass(frozen=True)
class Observed:
    """What a runtime saw of one bot's workload."""

    bot_id: int
    workload_id: str
    state: str
    config_version: int | None
    exit_code: int | None = None
    started_at: datetime | None = None
    error: str | None = None
    address: str | None = None  # the workload's IP on the bots' network (docker/swarm), for /metrics scraping

    @property
    def running(self) -> bool:
        """True when the workload is up (running or paused counts as up; so does a swarm task being
        scheduled or started: "starting")."""
        return self.state in ("running", "paused", "restarting", "starting")


@dataclass(frozen=True)
class RuntimeEvent:
    """A lifecycle change reported by a runtime as it happens."""

    bot_id: int
    kind: str
    workload_id: str


@runtime_checkable
class Runtime(Protocol):
    """Converges bot workloads; implemented by process, docker and swarm runtimes."""

    kind: str

    async def observe(self) -> dict[int, Observed]:
        """Every workload we own, keyed by bot id, from a single listing."""
        ...

    async def start(self, spec: WorkloadSpec) -> Observed:
        """Create and start, adopting a matching workload and replacing an older version."""
        ...

    async def stop(self, bot_id: int, *, timeout_s: float = 10) -> None:
        """Stop gracefully (SIGTERM, then kill after timeout_s); idempotent."""
        ...

    async def remove(self, bot_id: int) -> None:
        """Stop and delete the workload; idempotent."""
        ...

    async def signal(self, bot_id: int, sig: str) -> None:
        """Deliver a signal such as SIGUSR1 (pause) or SIGUSR2 (resume)."""
        ...

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Lifecycle events as they happen, until close()."""
        ...

    async def ping(self) -> None:
        """Raise RuntimeUnavailable when the runtime is unreachable."""
        ...

    async def close(self) -> None:
        """Release connections and stop event streams."""
        ...


def parse_signal(sig: str) -> _signal.Signals:
    """Resolve "SIGUSR1", "USR1" or "10" to a signal; RuntimeConfigError when unknown."""
    text = str(sig).strip().upper()
    try:
        if text.isdigit():
            return _signal.Signals(int(text))
        return _signal.Signals[text if text.startswith("SIG") else f"SIG{text}"]
    except (KeyError, ValueError) as exc:
        raise RuntimeConfigError(f"unknown signal {sig!r}") from exc


def owned_labels(*, bot_id: int, config_version: int, runtime_kind: str) -> dict[str, str]:
    """The labels that mark a docker/swarm workload as ours."""
    return {
        LABEL_MANAGED: "true",
        LABEL_RUNTIME: runtime_kind,
        LABEL_BOT_ID: str(bot_id),
        LABEL_CONFIG_VERSION: str(config_version),
    }


def label_int(labels: Mapping[str, str] | None, key: str) -> int | None:
    """Read an integer label, None when absent or malformed."""
    if not labels:
        return None
    try:
        return int(labels[key])
    except (KeyError, TypeError, ValueError):
        return None
