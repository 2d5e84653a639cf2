"""GET /healthz, /readyz, /metrics, /config."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field

from gordon_manager.db import migrate
from gordon_manager.db import supervisor as embedded_db
from gordon_manager.health.redact import redacted_config
from gordon_manager.http.auth import Operator
from gordon_manager.http.models import CamelModel
from gordon_manager.http.problems import problem_response
from gordon_manager.observability import metrics
from gordon_manager.version import __version__

router = APIRouter(tags=["ops"])
DB_CHECK_TIMEOUT_S = 2.0


class Health(CamelModel):
    """Liveness with the degraded state."""

    status: Literal["ok", "degraded"]
    version: str = Field(examples=[__version__])
    checks: dict[str, dict[str, Any]]
    degraded: list[Literal["peer_down", "ws_reconnect_storm", "ws_subscriber_overload"]]
    degraded_details: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Ready(CamelModel):
    """Readiness: the database answers and migrations are current."""

    ready: bool
    migration_version: int


class ConfigDump(CamelModel):
    """The effective configuration, secrets redacted."""

    version: str
    config: dict[str, Any]


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
    return Health(status="degraded" if degraded else "ok", version=__version__, checks=checks,
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
    return ConfigDump(version=__version__, config=redacted_config(request.app.state.ctx.settings))

