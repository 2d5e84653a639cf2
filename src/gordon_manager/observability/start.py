"""Starts the ops loops: file-SD writer (when a path is set), stack-health prober, drift checker."""

from __future__ import annotations

from typing import Any

from gordon_manager.observability.file_sd import FileSdWriter
from gordon_manager.observability.prober import StackProber, configured_peers
from gordon_manager.portfolio.drift import DriftChecker


async def start(ctx: Any) -> None:
    """Register the loops with the supervisor (handles kept in ``ctx.services`` for tests and wake())."""
    settings = ctx.settings
    if settings.file_sd_path is not None:
        writer = FileSdWriter(pool=ctx.pool, path=settings.file_sd_path)
        ctx.services.file_sd = writer
        ctx.supervisor.start(writer)
    start_prober(ctx)

    drift = DriftChecker(pool=ctx.pool, active=ctx.leads)  # singleton work: the leading replica's
    ctx.services.portfolio_drift = drift
    ctx.supervisor.start(drift)


def start_prober(ctx: Any) -> None:
    """The stack-health prober (every HTTP worker runs one, so /healthz answers alike everywhere)."""
    prober = StackProber(peers=configured_peers(ctx), health=ctx.health,
                         interval=ctx.settings.stack_health_interval_s, timeout_s=ctx.settings.http_timeout_s)
    ctx.services.stack_prober = prober
    ctx.supervisor.start(prober)
