"""Allow-list builders for Docker create payloads.

The socket proxy filters by path only, so it would happily forward a privileged container with the
host's root bind-mounted. Every payload the manager sends is therefore built here, from a fixed set
of keys, and nothing from the caller is copied through unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gordon_manager.runtimes.base import RuntimeConfigError, WorkloadSpec, owned_labels

# Docker reference grammar, simplified: lowercase repository path with optional registry host[:port],
# optional :tag, optional @sha256 digest.
_IMAGE_RE = re.compile(
    r"^(?P<repo>(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORBIDDEN_NETWORKS = ("host",)
_FORBIDDEN_NETWORK_PREFIXES = ("container:", "ns:")

CONTAINER_KEYS = frozenset(
    {"Image", "Cmd", "Env", "Labels", "HostConfig", "StopSignal", "StopTimeout", "User", "NetworkDisabled",
     "Healthcheck"}  # Healthcheck: a service container's probe (runtimes/services.py); "NONE" for bots
)
# A bot's liveness is the reconciler's business (runtime events, heartbeats): the image's HEALTHCHECK
# (the manager's /healthz; a python3 per probe) is switched off for bot containers, or 200 bots spend
# a core starting interpreters to say what the runtime already knows.
NO_HEALTHCHECK = {"Test": ["NONE"]}
HOST_CONFIG_KEYS = frozenset(
    {
        "NetworkMode",
        "Privileged",
        "CapDrop",
        "SecurityOpt",
        "ReadonlyRootfs",
        "RestartPolicy",
        "NanoCpus",
        "Memory",
        "MemorySwap",
        "PidsLimit",
        "Init",
        "LogConfig",
        "AutoRemove",
        "Tmpfs",
    }
)


@dataclass(frozen=True)
class PayloadPolicy:
    """What the manager may ask Docker for: allowed image repositories and isolation knobs."""

    allowed_images: tuple[str, ...]
    network: str = "none"
    readonly_rootfs: bool = False
    pids_limit: int | None = 512
    user: str | None = None
    stop_timeout_s: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_images", tuple(p.strip() for p in self.allowed_images if p.strip()))
        if not self.allowed_images:
            raise RuntimeConfigError("no allowed image repositories configured")
        net = self.network.strip()
        if (
            net in _FORBIDDEN_NETWORKS
            or net.startswith(_FORBIDDEN_NETWORK_PREFIXES)
            or not _NAME_RE.match(net)
        ):
            # Host/container network namespaces would let a bot reach the proxy or the host itself.
            raise RuntimeConfigError(f"network {self.network!r} is not allowed for bots")
        if self.user is not None and self.user.split(":")[0] in ("0", "root"):
            raise RuntimeConfigError("bots may not run as root when a user is configured")


def image_repository(image: str) -> str:
    """Repository part of an image reference (no tag, no digest); RuntimeConfigError when malformed."""
    match = _IMAGE_RE.match(image or "")
    if match is None:
        raise RuntimeConfigError(f"malformed image reference {image!r}")
    return match.group("repo")


def image_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    """True when the image's repository matches an allowed prefix.

    "ghcr.io/dlepaux/" allows anything under that path; "gordon-bot" allows exactly that
    repository (and "gordon-bot/..."), but not "gordon-bot-evil".
    """
    try:
        repo = image_repository(image)
    except RuntimeConfigError:
        return False
    for prefix in allowed:
        if prefix.endswith("/"):
            if repo.startswith(prefix):
                return True
        elif repo == prefix or repo.startswith(prefix + "/"):
            return True
    return False


def check_image(image: str, policy: PayloadPolicy) -> str:
    """Return the image when allowed, else raise RuntimeConfigError."""
    image_repository(image)
    if not image_allowed(image, policy.allowed_images):
        raise RuntimeConfigError(
            f"image {image!r} is not in the allowed repositories {list(policy.allowed_images)}"
        )
    return image


def check_spec(spec: WorkloadSpec) -> None:
    """Validate the parts of a spec that end up in a payload."""
    if not _NAME_RE.match(spec.name):
        raise RuntimeConfigError(f"invalid workload name {spec.name!r}")
    if any(not isinstance(arg, str) or "\x00" in arg for arg in spec.command):
        raise RuntimeConfigError("command arguments must be strings without NUL bytes")
    for key, value in spec.env.items():
        if not _ENV_KEY_RE.match(str(key)) or not isinstance(value, str) or "\x00" in value:
            raise RuntimeConfigError(f"invalid environment variable {key!r}")
    if spec.cpu_limit is not None and not 0 < spec.cpu_limit <= 256:
        raise RuntimeConfigError(f"cpu_limit {spec.cpu_limit} out of range")
    if spec.memory_limit_mb is not None and not 6 <= spec.memory_limit_mb <= 1024 * 1024:
        # Docker refuses limits under 6 MB anyway; fail early with our error instead.
        raise RuntimeConfigError(f"memory_limit_mb {spec.memory_limit_mb} out of range")


def _env_list(spec: WorkloadSpec) -> list[str]:
    return [f"{key}={value}" for key, value in sorted(spec.env.items())]


def container_payload(spec: WorkloadSpec, *, policy: PayloadPolicy) -> dict[str, Any]:
    """Build a POST /containers/create body for a bot, from the allow-list only."""
    check_spec(spec)
    check_image(spec.image, policy)
    host_config: dict[str, Any] = {
        "NetworkMode": policy.network,
        "Privileged": False,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges:true"],
        "ReadonlyRootfs": bool(policy.readonly_rootfs),
        # The reconciler owns restarts (with backoff and quarantine); Docker must not race it.
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False,
        # A tiny init reaps zombies and forwards SIGTERM/SIGUSR1 to the bot (PID 1 ignores them otherwise).
        "Init": True,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if policy.readonly_rootfs:
        host_config["Tmpfs"] = {"/tmp": "rw,noexec,nosuid,size=64m"}
    if spec.cpu_limit is not None:
        host_config["NanoCpus"] = round(spec.cpu_limit * 1e9)
    if spec.memory_limit_mb is not None:
        host_config["Memory"] = spec.memory_limit_mb * 1024 * 1024
        host_config["MemorySwap"] = host_config["Memory"]  # no swap beyond the limit
    if policy.pids_limit is not None:
        host_config["PidsLimit"] = int(policy.pids_limit)
    payload: dict[str, Any] = {
        "Image": spec.image,
        "Env": _env_list(spec),
        "Labels": owned_labels(bot_id=spec.bot_id, config_version=spec.config_version, runtime_kind="docker"),
        "StopSignal": "SIGTERM",
        "StopTimeout": int(policy.stop_timeout_s),
        "NetworkDisabled": policy.network == "none",
        "Healthcheck": dict(NO_HEALTHCHECK),
        "HostConfig": host_config,
    }
    if spec.command:
        payload["Cmd"] = list(spec.command)
    if policy.user is not None:
        payload["User"] = policy.user
    return payload


def service_payload(spec: WorkloadSpec, *, policy: PayloadPolicy, replicas: int = 1) -> dict[str, Any]:
    """Build a POST /services/create body: one replica, no mounts, no host network, no restarts."""
    check_spec(spec)
    check_image(spec.image, policy)
    labels = owned_labels(bot_id=spec.bot_id, config_version=spec.config_version, runtime_kind="swarm")
    container_spec: dict[str, Any] = {
        "Image": spec.image,
        "Env": _env_list(spec),
        "Labels": dict(labels),
        "Init": True,
        "ReadOnly": bool(policy.readonly_rootfs),
        "CapabilityDrop": ["ALL"],
        "StopSignal": "SIGTERM",
        "StopGracePeriod": int(policy.stop_timeout_s * 1e9),
        "Healthcheck": dict(NO_HEALTHCHECK),
    }
    if spec.command:
        container_spec["Args"] = list(spec.command)
    if policy.user is not None:
        container_spec["User"] = policy.user
    limits: dict[str, Any] = {}
    if spec.cpu_limit is not None:
        limits["NanoCPUs"] = round(spec.cpu_limit * 1e9)
    if spec.memory_limit_mb is not None:
        limits["MemoryBytes"] = spec.memory_limit_mb * 1024 * 1024
    if policy.pids_limit is not None:
        limits["Pids"] = int(policy.pids_limit)
    task_template: dict[str, Any] = {
        "ContainerSpec": container_spec,
        "Resources": {"Limits": limits},
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}},
    }
    if policy.network != "none":
        task_template["Networks"] = [{"Target": policy.network}]
    return {
        "Name": spec.name,
        "Labels": labels,
        "TaskTemplate": task_template,
        "Mode": {"Replicated": {"Replicas": int(replicas)}},
    }
