"""Gordon service containers (not bots) through docker-socket-proxy: start a candidate, read its
Docker HEALTHCHECK, swap it in under the service's name.

A service container is named after its service and labelled ``gordon.managed=true`` and
``gordon.service=<name>``; a candidate also carries ``gordon.service_deploy=<deploy id>`` and is
named ``<service>.deploy-<id>`` until the swap renames it. No ``gordon.bot_id`` label: the bot
runtimes never see these containers. The create payload is built here from the allow-list in
``runtimes.payload`` (CONTAINER_KEYS / HOST_CONFIG_KEYS): never privileged, no mounts, all
capabilities dropped; only the environment the operator gave the previous container (its Env minus
its image's Env) and its network (unless host or another container's namespace) carry over.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gordon_manager.runtimes.base import LABEL_MANAGED, RuntimeConfigError
from gordon_manager.runtimes.docker_api import DockerAPI, DockerConflict, DockerNotFound
from gordon_manager.runtimes.payload import (
    CONTAINER_KEYS,
    HOST_CONFIG_KEYS,
    PayloadPolicy,
    check_image,
)

logger = logging.getLogger(__name__)

LABEL_SERVICE = "gordon.service"
LABEL_SERVICE_DEPLOY = "gordon.service_deploy"
SERVICE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NS = 1_000_000_000


@dataclass(frozen=True)
class HealthProbe:
    """A Docker HEALTHCHECK: the probe (exec form) and its timing."""

    test: tuple[str, ...]
    interval_s: float = 2.0
    timeout_s: float = 5.0
    retries: int = 3
    start_period_s: float = 0.0

    @classmethod
    def http(cls, *, path: str, port: int, **timing: Any) -> HealthProbe:
        """GET http://127.0.0.1:<port><path> from inside the container (busybox/GNU wget).

        No ``-T``: dockerd kills a probe that outlives the health check's timeout anyway (and the
        timeout option crashes some static busybox builds).
        """
        return cls(test=("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"), **timing)

    @classmethod
    def command(cls, argv: Sequence[str], **timing: Any) -> HealthProbe:
        """Run argv in the container; exit code 0 = healthy."""
        return cls(test=tuple(argv), **timing)

    def payload(self) -> dict[str, Any]:
        """The Engine API ``Healthcheck`` object (durations in nanoseconds)."""
        if not self.test or any(not isinstance(a, str) or not a or "\x00" in a for a in self.test):
            raise RuntimeConfigError("health check command must be non-empty strings without NUL")
        return {"Test": ["CMD", *self.test], "Interval": round(self.interval_s * _NS),
                "Timeout": round(self.timeout_s * _NS), "Retries": int(self.retries),
                "StartPeriod": round(self.start_period_s * _NS)}


def carried_env(container: Mapping[str, Any] | None, image: Mapping[str, Any] | None) -> list[str]:
    """What the operator set on the old container: its Env minus the Env its image brought."""
    if not container:
        return []
    own = (container.get("Config") or {}).get("Env") or []
    from_image = set(((image or {}).get("Config") or {}).get("Env") or [])
    return [item for item in own if item not in from_image and _ENV_KEY_RE.match(item.split("=", 1)[0])]


def carried_network(container: Mapping[str, Any] | None, policy: PayloadPolicy) -> str:
    """The old container's network when it is one a manager may ask for, else the policy's."""
    mode = str(((container or {}).get("HostConfig") or {}).get("NetworkMode") or "")
    if not mode or mode in ("default", "bridge") or mode == "host" or ":" in mode:
        return policy.network
    return mode


def service_container_payload(*, service: str, deploy_id: int, image: str, probe: HealthProbe,
                              policy: PayloadPolicy, env: Sequence[str] = (), network: str | None = None) -> dict:
    """POST /containers/create body of a service candidate, from the allow-list only."""
    if not SERVICE_NAME_RE.match(service):
        raise RuntimeConfigError(f"invalid service name {service!r}")
    check_image(image, policy)
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY_RE.match(key) or "\x00" in value:
            raise RuntimeConfigError(f"invalid environment entry for {key!r}")
    net = network or policy.network
    if net == "host" or ":" in net:
        raise RuntimeConfigError(f"network {net!r} is not allowed for services")
    host_config = {
        "NetworkMode": net,
        "Privileged": False,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges:true"],
        "ReadonlyRootfs": bool(policy.readonly_rootfs),
        # Nothing reconciles a service container: Docker restarts it if it dies, until we stop it.
        "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "Init": True,
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    if policy.pids_limit is not None:
        host_config["PidsLimit"] = int(policy.pids_limit)
    payload = {
        "Image": image,
        "Env": list(env),
        "Labels": {LABEL_MANAGED: "true", LABEL_SERVICE: service, LABEL_SERVICE_DEPLOY: str(deploy_id)},
        "Healthcheck": probe.payload(),
        "StopSignal": "SIGTERM",
        "StopTimeout": int(policy.stop_timeout_s),
        "NetworkDisabled": net == "none",
        "HostConfig": host_config,
    }
    # The allow-list is the contract with the socket proxy (which checks paths, never bodies).
    if not (set(payload) <= CONTAINER_KEYS and set(host_config) <= HOST_CONFIG_KEYS):  # pragma: no cover
        raise RuntimeConfigError("service payload outside the allow-list")
    return payload


def candidate_name(service: str, deploy_id: int) -> str:
    """Name of a deploy's new container until the swap."""
    return f"{service}.deploy-{deploy_id}"


class ServiceContainers:
    """Service container operations through the socket proxy (errors: our RuntimeFailure family)."""

    def __init__(self, *, policy: PayloadPolicy, proxy_url: str | None = None, timeout_s: float = 10.0,
                 api: DockerAPI | None = None) -> None:
        if api is None and not proxy_url:
            raise RuntimeConfigError("service deploys need DOCKER_SOCKET_PROXY_URL")
        self._api = api or DockerAPI(base_url=proxy_url or "", timeout_s=timeout_s)
        self._policy = policy

    async def serving(self, service: str) -> dict[str, Any] | None:
        """Inspect of the container serving ``service`` (named after it), None when there is none."""
        try:
            body = await self._api.inspect_container(service)
        except DockerNotFound:
            return None
        labels = (body.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_SERVICE) != service or labels.get(LABEL_MANAGED) != "true":
            raise RuntimeConfigError(f"container {service!r} is not a gordon-managed service container "
                                     f"(labels {LABEL_MANAGED}=true, {LABEL_SERVICE}={service} missing)")
        return body

    async def deploy_containers(self) -> list[dict[str, Any]]:
        """Every container a service deploy created (summaries, with labels and names)."""
        return await self._api.list_containers(
            filters={"label": [f"{LABEL_MANAGED}=true", LABEL_SERVICE_DEPLOY]})

    async def start_candidate(self, *, service: str, deploy_id: int, image: str, probe: HealthProbe,
                              base: Mapping[str, Any] | None) -> str:
        """Create and start the deploy's new container (adopting one a previous attempt created)."""
        found = [c for c in await self.deploy_containers()
                 if (c.get("Labels") or {}).get(LABEL_SERVICE_DEPLOY) == str(deploy_id)]
        if found:
            container_id = str(found[0]["Id"])
        else:
            image_body = None
            if base is not None:
                try:
                    image_body = await self._api.get_json(f"/images/{(base.get('Config') or {}).get('Image')}/json")
                except (DockerNotFound, RuntimeConfigError):
                    image_body = None  # the old image is gone: carry its whole Env rather than none
            payload = service_container_payload(service=service, deploy_id=deploy_id, image=image, probe=probe,
                                                policy=self._policy, env=carried_env(base, image_body),
                                                network=carried_network(base, self._policy))
            container_id = await self._api.create_container(name=candidate_name(service, deploy_id),
                                                            payload=payload)
            logger.info("service %s: created candidate container %s (%s)", service, container_id[:12], image)
        await self._api.start_container(container_id)
        return container_id

    async def health(self, container_id: str) -> dict[str, Any]:
        """State and HEALTHCHECK result (see DockerAPI.container_health)."""
        return await self._api.container_health(container_id)

    async def swap_in(self, *, service: str, old_id: str | None, new_id: str) -> None:
        """Stop and remove the old container, then give the new one the service's name; idempotent."""
        if old_id is not None and old_id != new_id:
            await self.remove(old_id)
        current = await self._api.container_health(new_id)
        if current["name"] == service:
            return
        try:
            await self._api.rename_container(new_id, name=service)
        except DockerConflict as exc:
            raise RuntimeConfigError(f"service {service}: the name is still taken ({exc})") from exc
        logger.info("service %s: container %s now serves", service, new_id[:12])

    async def remove(self, container_id: str, *, timeout_s: float | None = None) -> None:
        """Stop gracefully, then delete; a container already gone is fine."""
        try:
            await self._api.stop_container(container_id, timeout_s=timeout_s or self._policy.stop_timeout_s)
        except DockerNotFound:
            return
        except DockerConflict:
            pass
        try:
            await self._api.remove_container(container_id, force=True)
        except DockerConflict:
            pass  # removal already in progress

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._api.close()
