"""GET /healthz, /readyz, /metrics, /config."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ConfigDict, Field

from gordon_manager.db import migrate
from gordon_manager.db import supervisor as embedded_db
from gordon_manager.health.redact import EffectiveConfig, redacted_config
from gordon_manager.http.auth import Operator
from gordon_manager.http.models import CamelModel
from gordon_manager.http.problems import problem_response
from gordon_manager.observability import metrics
from gordon_manager.version import __version__

router = APIRouter(tags=["ops"])
DB_CHECK_TIMEOUT_S = 2.0


class _Check(CamelModel):
    """A check's members (published by the component that owns it; members not documented here are not sent)."""

    model_config = ConfigDict(extra="ignore")


class DatabaseCheck(_Check):
    """The database answered (/healthz asks it each time) and its pending migrations."""

    ok: bool
    detail: str | None = Field(None, description="Why not, when it did not answer (the error's type).")
    pending_migrations: list[int] | None = Field(None, description="Migration versions not applied yet.")


class EmbeddedDatabaseCheck(_Check):
    """The supervisor of the embedded PostgreSQL (only in the process that runs it)."""

    ok: bool
    state: Literal["running", "down", "stopped"]
    pid: int | None = None
    deaths: int
    restarts: int
    failed_restarts: int
    last_death_at: datetime | None = None
    last_error: str | None = None
    next_attempt_in_s: float | None = Field(None, description="While down: seconds until the next restart attempt.")


class PeerCheck(_Check):
    """The latest probe of one peer."""

    ok: bool
    outcome: Literal["ok", "timeout", "error"]
    detail: str = Field(description="Why it failed (empty when ok).")
    latency_ms: float
    since: datetime = Field(description="When it last changed between up and down.")
    checked_at: datetime


class NatsCheck(_Check):
    """The NATS consumer of gordon-risk's breaker events (or why breaker deltas come from NOTIFY)."""

    configured: bool
    connected: bool | None = None
    breaker_state_source: Literal["nats", "notify"]
    detail: str | None = None
    stream: str | None = None
    consumer: str | None = None
    subject: str | None = None
    forwarded: int | None = None
    rejected: int | None = None
    error: str | None = None


class EventsListenerCheck(_Check):
    """The PostgreSQL LISTEN connection feeding /ws."""

    connected: bool
    reconnects: int
    last_id: int = Field(description="Highest outbox id seen.")
    replayed_rows: int
    error: str | None = None


class WorkerCheck(_Check):
    """This worker process (GORDON_MANAGER_WORKERS > 1)."""

    pid: int
    background: bool = Field(description="Whether this worker runs the background services.")


class ServicesCheck(_Check):
    """Background services that failed to start."""

    ok: bool
    failed: dict[str, str] = Field(description="Service → its error.")


class HealthChecks(_Check):
    """The named checks; a check that does not run in this process is absent."""

    database: DatabaseCheck
    embedded_database: EmbeddedDatabaseCheck | None = None
    peers: dict[str, PeerCheck] | None = Field(None, description="Peer name (`postgres`, `nats`, …) → its latest probe.")
    nats: NatsCheck | None = None
    events_listener: EventsListenerCheck | None = None
    worker: WorkerCheck | None = None
    services: ServicesCheck | None = None


DegradedReason = Literal["peer_down", "ws_reconnect_storm", "ws_subscriber_overload"]


class Health(CamelModel):
    """Liveness with the degraded state."""

    status: Literal["ok", "degraded"]
    version: str = Field(examples=[__version__])
    checks: HealthChecks
    degraded: list[DegradedReason]
    degraded_details: dict[DegradedReason, dict[str, str]] = Field(
        default_factory=dict, description="Reason → the sources raising it → what they say.")


class Ready(CamelModel):
    """Readiness: the database answers and migrations are current."""

    ready: bool
    migration_version: int


class ConfigDump(CamelModel):
    """The effective configuration, secrets redacted."""

    version: str
    config: EffectiveConfig


async def _database_check(request: Request) -> dict[str, Any]:
    pool = request.app.state.ctx.pool
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
            async with pool.acquire() as conn:
                pending = await migrate.pending_versions(conn)
    except Exception as exc:  # any failure (timeout, refused, dropped database) means "not answering"
        return {"ok": False, "detail": type(exc).__name__}
    return {"ok": True, "pendingMigrations": pending}


@router.get("/healthz", response_model=Health, summary="Liveness and degraded state")
async def healthz(request: Request) -> Health:
    """Always 200 while the process serves; `degraded` names what is wrong."""
    ctx = request.app.state.ctx
    database = await _database_check(request)
    if not database["ok"]:
        ctx.health.set_degraded("peer_down", "postgres", database["detail"])
    else:
        ctx.health.clear_degraded("peer_down", "postgres")
    checks = {"database": database, **ctx.health.checks}
    watched = embedded_db.active()  # the embedded PostgreSQL's supervisor, in the process that runs it
    if watched is not None:
        checks["embeddedDatabase"] = watched.snapshot()
    degraded = ctx.health.degraded
    return Health(status="degraded" if degraded else "ok", version=__version__, checks=HealthChecks.model_validate(checks),
                  degraded=degraded, degraded_details=ctx.health.details())


@router.get("/readyz", response_model=Ready, summary="Readiness probe",
            responses={503: {"description": "Database down or migrations pending (problem+json)"}})
async def readyz(request: Request) -> Any:
    """200 only when the database answers and every migration is applied."""
    database = await _database_check(request)
    if not database["ok"]:
        return problem_response(503, slug="not-ready", detail=f"database not answering ({database['detail']})",
                                instance="/readyz")
    if database["pendingMigrations"]:
        return problem_response(503, slug="not-ready",
                                detail=f"migrations pending: {database['pendingMigrations']}", instance="/readyz")
    return Ready(ready=True, migration_version=migrate.latest_version())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics_endpoint() -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/config", response_model=ConfigDump, summary="Redacted effective config",
            responses={401: {"description": "Missing operator token"}, 403: {"description": "Wrong operator token"}})
async def config(request: Request, _actor: Operator) -> ConfigDump:
    """Every setting, with tokens, secrets and URL credentials redacted; needs the operator token."""
    return ConfigDump(version=__version__,
                      config=EffectiveConfig.model_validate(redacted_config(request.app.state.ctx.settings)))

