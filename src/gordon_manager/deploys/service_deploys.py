"""Service deploys: roll a Gordon service container to a new image, health-checked, old one kept on failure.

States: pending → starting (new container created and started, labelled gordon.managed /
gordon.service / gordon.service_deploy) → health_checking (dockerd runs the HEALTHCHECK inside the
container; we poll it through container inspect) → swapping (stop + remove the old container,
rename the new one to the service name) → done. Unhealthy, exited, timed out or
``DELETE …/abort`` (possible until swapping) → failed/aborted, and the new container is removed:
the old one never stopped serving.

The runner is level-triggered and resumable: each tick re-reads every unfinished deploy and
takes it as far as it can, so a restarted manager finishes (or cleans up) what the previous one
started; a container a previous attempt created is found by its deploy label and adopted.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from gordon_manager.deploys import repo
from gordon_manager.deploys.controller import Leadership
from gordon_manager.deploys.schemas import HealthCheck, ServiceDeployCreate, ServiceDeployRead
from gordon_manager.errors import Conflict, NotFound, Unprocessable
from gordon_manager.http.casing import camelize
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.proxies.errors import PeerNotConfigured
from gordon_manager.runtimes.base import RuntimeConfigError, RuntimeFailure
from gordon_manager.runtimes.payload import image_allowed, image_repository
from gordon_manager.runtimes.services import LABEL_SERVICE, LABEL_SERVICE_DEPLOY, HealthProbe, ServiceContainers
from gordon_manager.settings import Settings

logger = logging.getLogger(__name__)

ABORTABLE = ("pending", "starting", "health_checking")
_READ_FIELDS = frozenset(ServiceDeployRead.model_fields)


def service_deploy_read(row: Any) -> ServiceDeployRead:
    """API model of a service_deploys row (GET /deploys/service/{id}/status, /ws ``deploy_progress``); the
    stored health check (HealthCheck's snake_case dump) is shown camelCase, as it is sent."""
    data = {k: v for k, v in dict(row).items() if k in _READ_FIELDS}
    data["health_check"] = camelize(data.get("health_check") or {})
    return ServiceDeployRead(**data)


def allowed_images(settings: Settings) -> tuple[str, ...]:
    return tuple(p.strip() for p in settings.allowed_images.split(",") if p.strip())


async def create_service_deploy(pool: asyncpg.Pool, *, body: ServiceDeployCreate, settings: Settings,
                                actor: str) -> ServiceDeployRead:
    """Record a pending service deploy (the runner does the work); 409 while one is in flight."""
    if not settings.docker_socket_proxy_url:
        raise PeerNotConfigured("DOCKER_SOCKET_PROXY_URL is not set: service deploys go through "
                                "docker-socket-proxy")
    try:
        image_repository(body.image)
    except RuntimeConfigError as exc:
        raise Unprocessable(str(exc), extra={"errors": [{"field": "image", "message": "malformed image"}]}) from exc
    allowed = allowed_images(settings)
    if not image_allowed(body.image, allowed):
        raise Unprocessable(f"image {body.image!r} is not from an allowed repository ({', '.join(allowed)})",
                            extra={"errors": [{"field": "image", "message": "repository not allowed"}]})
    if body.service.startswith("gordon-bot-"):
        raise Unprocessable("gordon-bot-* containers are bot workloads, owned by the reconciler",
                            extra={"errors": [{"field": "service", "message": "reserved name"}]})
    async with pool.acquire() as conn:
        try:
            row = await repo.insert_service_deploy(conn, service=body.service, image=body.image, actor=actor,
                                                   health_check=body.health_check.model_dump(mode="json"))
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"service {body.service!r} already has a deploy in progress",
                           extra={"currentState": "deploying"}) from exc
    return service_deploy_read(row)


async def get_service_deploy_or_raise(conn: asyncpg.Connection, *, deploy_id: int) -> asyncpg.Record:
    row = await repo.get_service_deploy(conn, deploy_id=deploy_id)
    if row is None:
        raise NotFound(f"service deploy {deploy_id} does not exist")
    return row


async def abort_service_deploy(pool: asyncpg.Pool, *, deploy_id: int, actor: str) -> ServiceDeployRead:
    """Abort before the swap (the runner removes the new container); 409 once swapping or finished."""
    async with pool.acquire() as conn:
        row = await repo.service_finish(conn, deploy_id=deploy_id, from_states=ABORTABLE, state="aborted",
                                        reason=f"aborted by {actor}")
        if row is None:
            current = await get_service_deploy_or_raise(conn, deploy_id=deploy_id)
            raise Conflict(f"service deploy {deploy_id} is {current['state']}: too late to abort",
                           extra={"currentState": current["state"]})
    record_service_finished(row)
    return service_deploy_read(row)


def record_service_finished(row: Any) -> None:
    metrics.DEPLOYS.labels(kind="service", outcome=row["state"]).inc()
    if row["finished_at"] is not None:
        metrics.DEPLOY_DURATION.labels(kind="service").observe(
            max(0.0, (row["finished_at"] - row["started_at"]).total_seconds()))


def probe_of(health: HealthCheck) -> HealthProbe:
    """The Docker HEALTHCHECK a request's health check becomes."""
    timing = {"interval_s": health.interval_s, "timeout_s": health.timeout_s, "retries": health.retries,
              "start_period_s": health.start_period_s}
    if health.command is not None:
        return HealthProbe.command(health.command, **timing)
    assert health.http_path is not None and health.port is not None  # the model validated this
    return HealthProbe.http(path=health.http_path, port=health.port, **timing)


class ServiceDeployRunner(LoopService):
    """Drives service deploys; acts only in the leader replica."""

    name = "service-deployer"

    def __init__(self, *, pool: asyncpg.Pool, containers: ServiceContainers, leader: Leadership | None,
                 interval: float = 0.5) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.containers = containers
        self.leader = leader
        self._swept = False

    async def run_once(self) -> None:
        if self.leader is not None and not self.leader.is_leader:
            return
        if not self._swept:
            await self.sweep()
            self._swept = True
        async with self.pool.acquire() as conn:
            work = await repo.service_work(conn)
        for row in work:
            try:
                await self.advance(row)
            except RuntimeConfigError as exc:  # can never succeed as asked: fail, old one keeps serving
                await self._fail(row, str(exc))
            except RuntimeFailure as exc:  # proxy/daemon trouble: retry next tick
                metrics.DOCKER_SOCKET_ERRORS.labels(kind=type(exc).__name__).inc()
                logger.warning("service deploy step failed; retrying",
                               extra={"deploy_id": row["id"], "error": str(exc)})

    async def advance(self, row: Any) -> None:
        """Take one deploy as far as it can go now."""
        state = row["state"]
        if state in ("aborted", "failed"):
            await self._clean_up(row)
            return
        health = HealthCheck.model_validate(row["health_check"])
        old = None
        if state == "pending":
            old = await self.containers.serving(row["service"])
            async with self.pool.acquire() as conn:
                row = await repo.service_starting(
                    conn, deploy_id=row["id"], old_container_id=old["Id"] if old is not None else None,
                    old_image=(old.get("Config") or {}).get("Image") if old is not None else None)
            if row is None:
                return
            state = "starting"
        if state == "starting":
            base = old or (await self.containers.serving(row["service"]) if row["old_container_id"] else None)
            new_id = await self.containers.start_candidate(service=row["service"], deploy_id=row["id"],
                                                           image=row["new_image"], probe=probe_of(health),
                                                           base=base)
            async with self.pool.acquire() as conn:
                # Recorded whatever the state now is, so an abort that raced us still removes it.
                await repo.service_record_new(conn, deploy_id=row["id"], container_id=new_id)
                row = await repo.service_health_checking(conn, deploy_id=row["id"], wait_s=health.wait_budget_s())
            if row is None:
                return
            state = "health_checking"
        if state == "health_checking":
            seen = await self.containers.health(row["new_container_id"])
            if seen["status"] not in ("running", "created", "restarting"):
                await self._fail(row, f"new container {seen['status']} (exit code {seen['exit_code']})")
                return
            if seen["health"] == "unhealthy":
                await self._fail(row, f"health check failed: unhealthy after {seen['failing_streak']} failed probes"
                                      f" (last: {seen['last_output'] or 'no output'})")
                return
            if seen["health"] != "healthy":
                if row.get("health_expired"):
                    await self._fail(row, f"health check timed out after {health.wait_budget_s():g}s "
                                          f"(status {seen['health'] or 'none'})")
                return
            async with self.pool.acquire() as conn:
                row = await repo.service_transition(conn, deploy_id=row["id"], from_state="health_checking",
                                                    to_state="swapping")
            if row is None:
                return  # aborted meanwhile: cleaned up next tick
            state = "swapping"
        if state == "swapping":
            await self.containers.swap_in(service=row["service"], old_id=row["old_container_id"],
                                          new_id=row["new_container_id"])
            async with self.pool.acquire() as conn:
                done = await repo.service_finish(conn, deploy_id=row["id"], from_states=("swapping",), state="done",
                                                 reason=None)
            if done is not None:
                record_service_finished(done)
                logger.info("service deployed", extra={"service": row["service"], "image": row["new_image"]})

    async def _fail(self, row: Any, reason: str) -> None:
        async with self.pool.acquire() as conn:
            done = await repo.service_finish(conn, deploy_id=row["id"], from_states=ABORTABLE,
                                             state="failed", reason=reason)
        if done is None:  # swapping (too late to fail: the old one may be gone) or already finished
            logger.error("service deploy step failed", extra={"deploy_id": row["id"], "reason": reason})
            return
        record_service_finished(done)
        logger.warning("service deploy failed", extra={"deploy_id": row["id"], "reason": reason})
        await self._clean_up(done)

    async def _clean_up(self, row: Any) -> None:
        if row["new_container_id"] is not None and row["new_container_id"] != row["old_container_id"]:
            await self.containers.remove(row["new_container_id"], timeout_s=1)
        async with self.pool.acquire() as conn:
            await repo.service_cleaned(conn, deploy_id=row["id"])

    async def sweep(self) -> None:
        """At start: remove new containers of deploys that ended without recording them (a crash)."""
        leftovers = await self.containers.deploy_containers()
        if not leftovers:
            return
        ids = {}
        for item in leftovers:
            labels = item.get("Labels") or {}
            names = [n.lstrip("/") for n in item.get("Names") or []]
            if labels.get(LABEL_SERVICE) in names:
                continue  # it serves: never touch it
            try:
                ids[int(labels[LABEL_SERVICE_DEPLOY])] = str(item["Id"])
            except (KeyError, ValueError):
                continue
        if not ids:
            return
        async with self.pool.acquire() as conn:
            states = await repo.service_deploy_states(conn, ids=list(ids))
        for deploy_id, container_id in ids.items():
            if states.get(deploy_id) in (None, "aborted", "failed", "done"):
                logger.warning("removing leftover service container", extra={"deploy_id": deploy_id})
                await self.containers.remove(container_id, timeout_s=1)


async def service_deploys_page(pool: asyncpg.Pool, *, before_id: int | None, service: str | None,
                               limit: int) -> list[Any]:
    """A page of service deploys, newest first (optionally of one service)."""
    async with pool.acquire() as conn:
        return await repo.list_service_deploys(conn, before_id=before_id, service=service, limit=limit)
