"""Swarm runtime: each bot is a one-replica service, so a fleet spreads over many hosts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from gordon_manager.runtimes.base import (
    LABEL_BOT_ID,
    LABEL_CONFIG_VERSION,
    Observed,
    RuntimeEvent,
    RuntimeUnavailable,
    WorkloadNotFound,
    WorkloadSpec,
    label_int,
    parse_signal,
)
from gordon_manager.runtimes.docker import (
    container_address,
    container_events,
    events_since_now,
    parse_docker_time,
)
from gordon_manager.runtimes.docker_api import DockerConflict, DockerNotFound
from gordon_manager.runtimes.payload import service_payload
from gordon_manager.runtimes.proxied import ProxiedRuntime

logger = logging.getLogger(__name__)

_TASK_STATES = {
    "running": "running",
    **{
        s: "starting"  # being scheduled or started: up, not dead (the reconciler must not count a crash)
        for s in ("new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting")
    },
    **{s: "exited" for s in ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")},
}


def _replicas(service: Mapping[str, Any]) -> int:
    return int(((service.get("Spec") or {}).get("Mode") or {}).get("Replicated", {}).get("Replicas", 0) or 0)


def _latest_task(tasks: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    # Prefer the task swarm wants running; among equals, the most recently updated one.
    if not tasks:
        return None
    return max(tasks, key=lambda t: (t.get("DesiredState") == "running", str(t.get("UpdatedAt") or "")))


def task_address(task: Mapping[str, Any], network: str | None = None) -> str | None:
    """The task's IPv4 address on ``network`` (else its first attachment), without the prefix length."""
    attachments = [a for a in task.get("NetworksAttachments") or [] if a.get("Addresses")]
    named = [a for a in attachments if (((a.get("Network") or {}).get("Spec") or {}).get("Name")) == network]
    for attachment in named or attachments:
        return str(attachment["Addresses"][0]).split("/", 1)[0]
    return None


def observed_from_service(
    service: Mapping[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    network: str | None = None,
    container_addresses: Mapping[str, str] | None = None,
) -> Observed | None:
    """Observed for a service from its own tasks."""
    labels = (service.get("Spec") or {}).get("Labels") or {}
    bot_id = label_int(labels, LABEL_BOT_ID)
    if bot_id is None:
        return None
    version = label_int(labels, LABEL_CONFIG_VERSION)
    task = _latest_task(tasks)
    if task is not None:
        # During a rolling update the task still runs the config it was created with.
        task_labels = (((task.get("Spec") or {}).get("ContainerSpec")) or {}).get("Labels")
        version = label_int(task_labels, LABEL_CONFIG_VERSION) or version
    if task is None:
        state = "exited" if _replicas(service) == 0 else "starting"
        return Observed(bot_id=bot_id, workload_id=str(service["ID"]), state=state, config_version=version)
    status = task.get("Status") or {}
    task_state = str(status.get("State") or "")
    state = _TASK_STATES.get(task_state, "starting")
    container = status.get("ContainerStatus") or {}
    exit_code = container.get("ExitCode") if state == "exited" else None
    return Observed(
        bot_id=bot_id,
        workload_id=str(service["ID"]),
        state=state,
        config_version=version,
        exit_code=int(exit_code) if exit_code is not None else None,
        started_at=parse_docker_time(status.get("Timestamp")) if state == "running" else None,
        error=status.get("Err") or None,
        address=(task_address(task, network) or (container_addresses or {}).get(str(container.get("ContainerID"))))
        if state == "running" else None,
    )


class SwarmRuntime(ProxiedRuntime):
    """Bots as one-replica Swarm services labelled gordon.managed=true, through the socket proxy."""

    kind = "swarm"

    async def ping(self) -> None:
        """Raise RuntimeUnavailable unless the daemon answers and is a swarm manager."""
        await self._api.ping()
        info = await self._api.info()
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise RuntimeUnavailable("docker daemon behind the proxy is not an active swarm manager")

    async def _tasks_by_service(self, service_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        by_service: dict[str, list[dict[str, Any]]] = {sid: [] for sid in service_ids}
        if not service_ids:
            return by_service
        for task in await self._api.list_tasks(filters={"service": service_ids}):
            by_service.setdefault(str(task.get("ServiceID")), []).append(task)
        return by_service

    async def _container_addresses(self, tasks: Mapping[str, list[dict[str, Any]]]) -> dict[str, str]:
        """Container id -> address on the bots' network, of the running tasks on this node whose task
        does not say it (a swarm-scoped bridge network: only overlay attachments list addresses)."""
        if not any(
            (t.get("Status") or {}).get("State") == "running" and not task_address(t, self._policy.network)
            for ts in tasks.values() for t in ts
        ) or self._policy.network == "none":
            return {}
        items = await self._api.list_containers(filters=self._owned_filter(), all_=False)
        found = {}
        for item in items:
            address = container_address((item.get("NetworkSettings") or {}).get("Networks"), self._policy.network)
            if address:
                found[str(item["Id"])] = address
        return found

    async def observe(self) -> dict[int, Observed]:
        """Every service we own, keyed by bot id, from one /services and one /tasks call (and one
        /containers call when a running task's address is only known to its container)."""
        services = await self._api.list_services(filters=self._owned_filter())
        tasks = await self._tasks_by_service([str(s["ID"]) for s in services])
        addresses = await self._container_addresses(tasks)
        result: dict[int, Observed] = {}
        for service in services:
            obs = observed_from_service(service, tasks.get(str(service["ID"]), []), self._policy.network, addresses)
            if obs is not None and (
                obs.bot_id not in result
                or (obs.config_version or -1) > (result[obs.bot_id].config_version or -1)
            ):
                result[obs.bot_id] = obs
        return result

    async def _services_for(self, bot_id: int) -> list[dict[str, Any]]:
        return await self._api.list_services(filters=self._owned_filter(**{LABEL_BOT_ID: str(bot_id)}))

    async def _observe_one(self, service: Mapping[str, Any]) -> Observed:
        tasks = await self._tasks_by_service([str(service["ID"])])
        addresses = await self._container_addresses(tasks)
        obs = observed_from_service(service, tasks[str(service["ID"])], self._policy.network, addresses)
        if obs is None:
            raise WorkloadNotFound(f"service {service.get('ID')} lost its gordon.bot_id label")
        return obs

    async def start(self, spec: WorkloadSpec) -> Observed:
        """Create the bot's service, or update/force-restart the existing one in place."""
        desired = service_payload(spec, policy=self._policy)
        async with self._lock(spec.bot_id):
            for _attempt in range(3):
                services = await self._services_for(spec.bot_id)
                if not services:
                    try:
                        service_id = await self._api.create_service(desired)
                    except DockerConflict:
                        await asyncio.sleep(0.1)
                        continue  # created concurrently: adopt it on the next pass
                    logger.info("bot %s: created service %s (%s)", spec.bot_id, service_id[:12], spec.name)
                    return await self._observe_one(await self._api.inspect_service(service_id))
                keep, *extra = sorted(services, key=lambda s: str(s.get("CreatedAt") or ""))
                for dup in extra:
                    await self._api.remove_service(str(dup["ID"]))
                try:
                    return await self._converge(keep, spec, desired)
                except (DockerConflict, DockerNotFound):
                    await asyncio.sleep(0.1)  # object version moved or service vanished: retry
                    continue
            raise RuntimeUnavailable(
                f"bot {spec.bot_id}: could not converge service {spec.name} after retries"
            )

    async def _converge(
        self, service: Mapping[str, Any], spec: WorkloadSpec, desired: dict[str, Any]
    ) -> Observed:
        old_spec = dict(service.get("Spec") or {})
        service_version = label_int(old_spec.get("Labels"), LABEL_CONFIG_VERSION)
        if service_version != spec.config_version:
            logger.info("bot %s: updating service to config v%s", spec.bot_id, spec.config_version)
            new_spec = desired
        elif _replicas(service) != 1:
            new_spec = {**old_spec, "Mode": {"Replicated": {"Replicas": 1}}}
        else:
            current = await self._observe_one(service)
            if current.state in ("running", "starting"):
                return current
            # Same config, dead task: bump ForceUpdate so swarm schedules a fresh task.
            template = dict(old_spec.get("TaskTemplate") or {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1
            new_spec = {**old_spec, "TaskTemplate": template}
        version = int((service.get("Version") or {}).get("Index") or 0)
        await self._api.update_service(str(service["ID"]), version=version, spec=new_spec)
        # Swarm replaces the task asynchronously; until then the old task is all observe() can see.
        return Observed(
            bot_id=spec.bot_id,
            workload_id=str(service["ID"]),
            state="starting",
            config_version=spec.config_version,
        )

    async def stop(self, bot_id: int, *, timeout_s: float | None = None) -> None:
        """Scale the service to zero replicas (swarm sends SIGTERM, then kills after the grace period,
        by default the policy's stop timeout)."""
        timeout_s = self._policy.stop_timeout_s if timeout_s is None else timeout_s
        async with self._lock(bot_id):
            for service in await self._services_for(bot_id):
                if _replicas(service) == 0:
                    continue
                new_spec = dict(service.get("Spec") or {})
                new_spec["Mode"] = {"Replicated": {"Replicas": 0}}
                template = dict(new_spec.get("TaskTemplate") or {})
                container = dict(template.get("ContainerSpec") or {})
                container["StopGracePeriod"] = int(timeout_s * 1e9)
                template["ContainerSpec"] = container
                new_spec["TaskTemplate"] = template
                version = int((service.get("Version") or {}).get("Index") or 0)
                try:
                    await self._api.update_service(str(service["ID"]), version=version, spec=new_spec)
                except DockerNotFound:
                    continue

    async def remove(self, bot_id: int) -> None:
        """Delete every service of the bot (swarm stops its tasks); idempotent."""
        async with self._lock(bot_id):
            for service in await self._services_for(bot_id):
                await self._api.remove_service(str(service["ID"]))

    async def signal(self, bot_id: int, sig: str) -> None:
        """Signal the bot's container; only possible when its task runs on the node behind the proxy."""
        signum = parse_signal(sig)
        services = await self._services_for(bot_id)
        tasks = await self._tasks_by_service([str(s["ID"]) for s in services])
        running = [
            t for ts in tasks.values() for t in ts if (t.get("Status") or {}).get("State") == "running"
        ]
        if not running:
            raise WorkloadNotFound(f"bot {bot_id} has no running task")
        container_id = (
            ((_latest_task(running) or {}).get("Status") or {}).get("ContainerStatus", {}).get("ContainerID")
        )
        if not container_id:
            raise WorkloadNotFound(f"bot {bot_id}: running task has no container id yet")
        try:
            await self._api.kill_container(str(container_id), signal=signum.name)
        except DockerNotFound as exc:
            raise WorkloadNotFound(f"bot {bot_id}: task container is not on this node ({exc})") from exc
        except DockerConflict as exc:
            raise WorkloadNotFound(f"bot {bot_id}: {exc}") from exc

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Container start/die/destroy on this node; remote nodes are caught by periodic observe()."""
        # Task containers carry our labels (copied onto the ContainerSpec), and their events name
        # the service, which is this runtime's workload id.
        return container_events(
            self._api,
            labels=self._owned_filter()["label"],
            closed=self._closed,
            reconnect_delay_s=self._reconnect_delay_s,
            workload_attr="com.docker.swarm.service.id",
            since=events_since_now(),
        )
