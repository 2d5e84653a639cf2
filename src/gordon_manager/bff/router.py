"""HTTP routes of the console reads: portfolio, performance, overlays, data, exchange ping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from gordon_manager.bff import data, exchange, overlays, performance, portfolio
from gordon_manager.bff.schemas import (
    BackfillJobPage,
    DataInventory,
    DataStatus,
    Decision,
    ExchangePing,
    OverlayDecisionPage,
    OverlaySummary,
    PerformanceRead,
    PortfolioRead,
    SourceHealthRead,
)
from gordon_manager.db.readpool import reading
from gordon_manager.http.instrument import bff_read
from gordon_manager.http.openapi import Responses
from gordon_manager.http.pagination import Pagination
from gordon_manager.http.params import From, To
from gordon_manager.runs.schemas import RunKind

router = APIRouter(tags=["console"])

BotFilter = Annotated[int | None, Query(alias="bot", ge=1, le=2**62, description="Only this bot.")]
Symbol = Annotated[str | None, Query(min_length=1, max_length=64, description="Symbol (or macro series).")]
_BAD: Responses = {400: {"description": "Invalid cursor (problem+json)"},
        422: {"description": "Invalid parameter (problem+json)"}}
SUMMARY_WINDOW = timedelta(hours=24)
EARLIEST = datetime.min.replace(tzinfo=UTC)


@router.get("/portfolio", response_model=PortfolioRead, summary="Current portfolio")
@bff_read("portfolio")
async def get_portfolio(request: Request) -> PortfolioRead:
    """Positions, cash and exposure per bot and in total, with each bot's live run (formulas in the README)."""
    async with reading(request.app.state.ctx) as conn:
        return await portfolio.portfolio(conn)


@router.get("/performance", response_model=PerformanceRead, summary="Portfolio and per-bot performance",
            responses=_BAD)
@bff_read("performance")
async def get_performance(request: Request, bot_id: BotFilter = None,
                          kind: Annotated[list[RunKind] | None, Query(description=(
                              "Run kinds to include (repeatable); default paper, shadow and live."))] = None,
                          ) -> PerformanceRead:
    """Returns over 1d/7d/30d/all, max drawdown and Sharpe from the equity points (formulas in the README)."""
    kinds: list[str] = sorted(set(kind)) if kind else list(performance.DEFAULT_KINDS)
    async with reading(request.app.state.ctx) as conn:
        return await performance.performance(conn, kinds=kinds, bot_id=bot_id)


@router.get("/overlays/decisions", response_model=OverlayDecisionPage, summary="Recent overlay decisions",
            responses=_BAD)
@bff_read("overlays.decisions")
async def list_overlay_decisions(request: Request, page: Pagination, bot_id: BotFilter = None,
                                 overlay: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                                 decision: Decision | None = None, start: From = None,
                                 end: To = None) -> OverlayDecisionPage:
    """Overlay decisions newest first; filter by bot, overlay, decision and time [from, to)."""
    async with reading(request.app.state.ctx) as conn:
        return await overlays.decisions(conn, page=page, bot_id=bot_id, overlay=overlay, decision=decision,
                                        start=start, end=end)


@router.get("/overlays/summary", response_model=OverlaySummary, summary="Overlay decision counts and rates",
            responses=_BAD)
@bff_read("overlays.summary")
async def overlay_summary(request: Request, bot_id: BotFilter = None, start: From = None,
                          end: To = None) -> OverlaySummary:
    """Counts, shares and hourly rates by overlay and decision over [from, to) (default: the last 24 h)."""
    end = (end or datetime.now(UTC)).astimezone(UTC)  # a day back from 0001-01-01T23:00-01:00 is in UTC only
    if start is None:  # the window before `to`, or what there is of it before year 1
        start = end - SUMMARY_WINDOW if end - EARLIEST >= SUMMARY_WINDOW else EARLIEST
    async with reading(request.app.state.ctx) as conn:
        return await overlays.summary(conn, start=start, end=end, bot_id=bot_id)


@router.get("/source-health", response_model=SourceHealthRead, summary="Data source freshness")
@bff_read("source-health")
async def source_health(request: Request) -> SourceHealthRead:
    """Each source's freshness with its stale threshold (its own, or the configured default) applied."""
    ctx = request.app.state.ctx
    async with reading(ctx) as conn:
        return await data.source_health(conn, default_stale_after_s=ctx.settings.source_stale_after_s)


@router.get("/data/status", response_model=DataStatus, summary="Data pipeline status")
@bff_read("data.status")
async def data_status(request: Request) -> DataStatus:
    """Per source last update and lag, backfill jobs by status, overall status."""
    ctx = request.app.state.ctx
    async with reading(ctx) as conn:
        return await data.status(conn, default_stale_after_s=ctx.settings.source_stale_after_s)


@router.get("/data/inventory", response_model=DataInventory, summary="Market data inventory", responses=_BAD)
@bff_read("data.inventory")
async def data_inventory(request: Request,
                         dataset: Literal["klines", "funding_rates", "open_interest", "metrics", "macro"] | None = None,
                         symbol: Symbol = None,
                         interval: Annotated[str | None, Query(pattern=r"^[0-9]{1,3}[smhdwM]$")] = None,
                         ) -> DataInventory:
    """Per symbol/interval: first and last time, rows, and for klines the gaps (via the reader views)."""
    async with reading(request.app.state.ctx) as conn:
        return await data.inventory(conn, dataset=dataset, symbol=symbol, interval=interval)


@router.get("/data/backfill/jobs", response_model=BackfillJobPage, summary="Backfill jobs", responses=_BAD)
@bff_read("data.backfill-jobs")
async def backfill_jobs(request: Request, page: Pagination,
                        status: Literal["queued", "running", "done", "failed", "cancelled"] | None = None,
                        source: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                        symbol: Symbol = None) -> BackfillJobPage:
    """Backfill jobs newest first; filter by status, source and symbol."""
    async with reading(request.app.state.ctx) as conn:
        return await data.backfill_jobs(conn, page=page, status=status, source=source, symbol=symbol)


@router.get("/exchange/ping", response_model=ExchangePing, summary="Exchange connectivity check")
@bff_read("exchange.ping")
async def exchange_ping(request: Request) -> ExchangePing:
    """Ping the exchange's public API (no keys); unreachable is a normal answer with the reason."""
    return await exchange.ping(request.app.state.ctx)
