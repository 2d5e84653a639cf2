"""create_app(): wires routers, error handling, middleware and background services (lifespan)."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gordon_manager.backtests.router import router as backtests_router
from gordon_manager.bff.router import router as bff_router
from gordon_manager.bots.router import router as bots_router
from gordon_manager.context import AppContext, load_or_generate_secret
from gordon_manager.db.connect import create_pool
from gordon_manager.deploys.router import router as deploys_router
from gordon_manager.errors import ConfigurationError
from gordon_manager.events.router import router as events_router
from gordon_manager.health.router import router as health_router
from gordon_manager.http.auth import OperatorAuth, load_operator_tokens_file, load_or_generate_token
from gordon_manager.http.console import install_console
from gordon_manager.http.cursor import CursorCodec
from gordon_manager.http.docs import install_docs
from gordon_manager.http.edge import EXPOSED_HEADERS, EdgeGuard, OriginPolicy
from gordon_manager.http.middleware import RequestContextMiddleware
from gordon_manager.http.openapi import install_openapi, operation_id
from gordon_manager.http.problems import install_problem_handlers
from gordon_manager.http.text_guard import TextGuardMiddleware
from gordon_manager.observability import metrics
from gordon_manager.observability.start import start as start_observability
from gordon_manager.proxies.router import router as proxies_router
from gordon_manager.runs.fastpath import EquityPageFastPath
from gordon_manager.runs.router import router as runs_router
from gordon_manager.settings import Settings, get_settings
from gordon_manager.strategies.router import router as strategies_router
from gordon_manager.version import __version__

logger = logging.getLogger(__name__)

DESCRIPTION = """Control plane and the only backend-for-frontend of Gordon.

Mutations require `X-Operator-Token`. Errors are `application/problem+json` (RFC 9457).
Lists are keyset-paginated with an opaque `cursor`; responses are camelCase."""


async def build_context(settings: Settings) -> AppContext:
    """Open the pool and load secrets; the caller owns closing it."""
    if settings.database_url is None:
        raise ConfigurationError("GORDON_DATABASE_URL is not set (the CLI starts an embedded server for you)")
    token = load_or_generate_token(
        settings.operator_token.get_secret_value() if settings.operator_token else None, settings.data_dir)
    cursor_key = load_or_generate_secret(
        settings.cursor_secret.get_secret_value() if settings.cursor_secret else None, settings.data_dir,
        "cursor-secret")
    named = load_operator_tokens_file(settings.operator_tokens_file) if settings.operator_tokens_file else None
    operator_auth = OperatorAuth(token, named)
    pool = await create_pool(settings.database_url.get_secret_value(), min_size=settings.db_pool_min,
                             max_size=settings.db_pool_max, timeout=settings.db_connect_timeout_s)
    return AppContext(settings=settings, pool=pool, operator_auth=operator_auth, cursors=CursorCodec(cursor_key))


async def start_services(ctx: AppContext) -> None:
    """Start the background services of every domain (each domain adds one line here)."""
    from gordon_manager.workers import runs_background, start_api_worker

    failed: dict[str, str] = {}
    background = runs_background(ctx)
    starters = service_starters() if background else [start_api_worker]
    if ctx.settings.workers > 1:
        ctx.health.set_check("worker", pid=os.getpid(), background=background)
    for starter in starters:
        try:
            await starter(ctx)
        except Exception as exc:  # serve (and say so in /healthz) rather than crash-loop: e.g. migrations pending
            name = starter.__module__.rsplit(".", 2)[-2]
            failed[name] = f"{type(exc).__name__}: {exc}"
            metrics.ERRORS.labels(component="startup", kind=type(exc).__name__).inc()
            logger.error("background service failed to start", extra={"service": name, "error": str(exc)})
    if failed:
        ctx.health.set_check("services", ok=False, failed=failed)


def service_starters() -> list:
    """``async def start(ctx)`` of each domain that runs background loops, in start order."""
    from gordon_manager.backtests.sweep_service import start as start_sweeps
    from gordon_manager.backtests.worker import start as start_backtests
    from gordon_manager.deploys.start import start as start_deploys
    from gordon_manager.events.service import start as start_events
    from gordon_manager.reconcile.start import start as start_reconciler
    from gordon_manager.runs.compactor import start as start_compactor
    from gordon_manager.runs.reaper import start as start_reaper

    return [
        start_reconciler,
        start_deploys,
        start_observability,
        start_events,
        start_backtests,
        start_sweeps,
        start_compactor,
        start_reaper,
    ]


def serve_app() -> FastAPI:
    """Factory for uvicorn worker processes (GORDON_MANAGER_WORKERS > 1): settings from the environment."""
    from gordon_manager.http.protocol import GuardedHttpProtocol
    from gordon_manager.observability.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, fmt=settings.log_format)
    GuardedHttpProtocol.configure(settings)
    return create_app(settings)


# Metrics are Prometheus (observability/metrics.py) and logs are JSON lines; FastAPI's native
# OpenTelemetry hooks (newer FastAPI) would otherwise look up the global providers on every request.
_NO_OTEL: dict[str, Any] = ({"telemetry": {"tracing": False, "metrics": False, "logs": False}}
            if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI application."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await build_context(settings)
        app.state.ctx = ctx
        app.state.operator_auth = ctx.operator_auth
        await start_services(ctx)
        metrics.UP.set(1)
        logger.info("gordon-manager serving", extra={"version": __version__, "bind": settings.bind_addr})
        try:
            yield
        finally:
            metrics.UP.set(0)
            await ctx.supervisor.stop()
            for service in ctx.services.running():
                close = getattr(service, "close", None)
                if close is not None:
                    await close()
            await ctx.pool.close()

    # One schema per model for requests and responses (no `-Input`/`-Output` twins); camelCase operationIds.
    # /docs and /redoc are served from packaged assets (http/docs.py), not FastAPI's CDN pages.
    app = FastAPI(title="gordon-manager", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  separate_input_output_schemas=False, generate_unique_id_function=operation_id, **_NO_OTEL)
    install_problem_handlers(app)
    install_docs(app)
    install_console(app)
    install_openapi(app)
    # The last added is the outermost: request id, access log and metrics wrap the edge checks
    # (hosts, origins, tokens, limits: nothing is read or parsed before them), then CORS for the
    # allowed origins, the text guard and the equity fast path.
    app.add_middleware(EquityPageFastPath)
    app.add_middleware(TextGuardMiddleware)
    origins = OriginPolicy(settings.cors_origins).allowed  # a bad origin fails here, when `serve` starts
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(origins),
                           allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["X-Operator-Token", "X-Read-Token", "If-Match", "Idempotency-Key",
                                          "X-Request-ID", "Content-Type"],
                           expose_headers=list(EXPOSED_HEADERS), max_age=600)
    app.add_middleware(EdgeGuard, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    for router in routers():
        app.include_router(router)
    return app


def routers() -> list:
    """Every router of the service, in the order they appear in the OpenAPI document (one line per domain)."""
    return [
        health_router,
        runs_router,
        bots_router,
        deploys_router,
        proxies_router,
        events_router,
        bff_router,
        backtests_router,
        strategies_router,
    ]
