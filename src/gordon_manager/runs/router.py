"""HTTP routes of the runs reads: parse, call the service, count and time the read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from gordon_manager.db.readpool import reading
from gordon_manager.errors import ClientError
from gordon_manager.http.instrument import bff_read
from gordon_manager.http.openapi import Responses
from gordon_manager.http.pagination import MAX_LIMIT, Pagination
from gordon_manager.http.params import From, To
from gordon_manager.runs import equity, service
from gordon_manager.runs.query import parse_query, query_parameters
from gordon_manager.runs.schemas import (
    BotEquityPage,
    BotEventPage,
    DownsampleMethod,
    EquityPage,
    EquityQuery,
    RoundtripPage,
    RunDetail,
    RunKind,
    RunPage,
    RunStatus,
)

router = APIRouter(tags=["runs"])

RunId = Annotated[int, Path(ge=1, le=2**62, description="Run id.")]
BotId = Annotated[int, Path(ge=1, le=2**62, description="Bot id.")]
Strategy = Annotated[str | None, Query(min_length=1, max_length=64)]
Symbol = Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,20}$")]
EquityLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Points per page.")]
EquityCursor = Annotated[str | None, Query(max_length=2048, description="Opaque cursor from `nextCursor`.")]
Points = Annotated[int | None, Query(ge=4, le=20000, description=(
    "Downsample the whole range to at most this many points (min/max-preserving: at least 4, the first, "
    "the last, the lowest and the highest); no paging."))]
Method = Annotated[DownsampleMethod, Query(description="`lttb` (shape, with the global extremes) or `minmax` "
                                                       "(every bucket's low and high).")]
JSON = "application/json"

_BAD: Responses = {400: {"description": "Invalid cursor (problem+json)"},
        422: {"description": "Invalid parameter, e.g. `from` after `to` or an unknown kind (problem+json)"}}
_RUN_404: Responses = {404: {"description": "No such run (problem+json)"}}
_BOT_404: Responses = {404: {"description": "No such bot (problem+json)"}}


# First in the router: the hot path is matched before every other route.
@router.get("/runs/{run_id}/equity", response_model=EquityPage, summary="A run's equity curve",
            responses={**_BAD, **_RUN_404}, openapi_extra={"parameters": query_parameters(EquityQuery)})
@bff_read("runs.equity")
async def run_equity(request: Request, run_id: RunId) -> Response:
    """Points in time order over [from, to): keyset pages of `limit`, or with `points` the whole range
    downsampled server-side in one answer (`downsample` says how)."""
    q = parse_query(EquityQuery, request)
    start, end = q.start, q.end
    service.check_range(start, end)
    ctx = request.app.state.ctx
    if q.points is not None:
        if q.cursor is not None:
            raise ClientError("`cursor` cannot be combined with `points` (a downsampled answer is not paged).")
        async with reading(ctx) as conn:
            body = await equity.run_downsampled(conn, run_id=run_id, start=start or equity.TIME_MIN,
                                                end=end or equity.TIME_MAX, points=q.points, method=q.method)
        return Response(body, media_type=JSON)
    return Response(await service.equity_page(ctx, run_id=run_id, query=q), media_type=JSON)


@router.get("/runs", response_model=RunPage, summary="List runs", responses=_BAD)
@bff_read("runs.list")
async def list_runs(request: Request, page: Pagination,
                    bot: Annotated[int | None, Query(ge=1, le=2**62, description="Only this bot's runs.")] = None,
                    kind: RunKind | None = None, status: RunStatus | None = None, strategy: Strategy = None,
                    symbol: Symbol = None, start: From = None, end: To = None) -> RunPage:
    """Runs newest first; filter by bot, kind, status, strategy, symbol and creation time [from, to)."""
    async with reading(request.app.state.ctx) as conn:
        return await service.list_runs(conn, page=page, bot_id=bot, kind=kind, status=status, strategy=strategy,
                                       symbol=symbol, start=start, end=end)


# The seed's invariants name the run list `/bff/runs` (its endpoint table says `/runs`): one handler, two paths.
router.add_api_route(
    "/bff/runs", list_runs, methods=["GET"], response_model=RunPage, responses=_BAD, name="bff_list_runs",
    summary="List runs, BFF alias", openapi_extra={"x-alias-of": "GET /runs"},
    description="Alias of `GET /runs` (the path the seed's invariants use): the same handler, parameters, "
                "cursor and answer; counted as `runs.list`.")


@router.get("/runs/{run_id}", response_model=RunDetail, summary="Get a run", responses=_RUN_404)
@bff_read("runs.get")
async def get_run(request: Request, run_id: RunId) -> RunDetail:
    """Config, status, progress, statistics and equity summary of one run."""
    async with reading(request.app.state.ctx) as conn:
        return await service.get_run(conn, run_id=run_id)


@router.get("/runs/{run_id}/roundtrips", response_model=RoundtripPage, summary="List a run's round trips",
            responses={**_BAD, **_RUN_404})
@bff_read("runs.roundtrips")
async def list_roundtrips(request: Request, run_id: RunId, page: Pagination,
                          side: Annotated[str | None, Query(pattern="^(long|short)$")] = None,
                          start: From = None, end: To = None) -> RoundtripPage:
    """Round trips in the order they closed; filter by side and exit time [from, to)."""
    async with reading(request.app.state.ctx) as conn:
        return await service.list_roundtrips(conn, page=page, run_id=run_id, side=side, start=start, end=end)


@router.get("/bots/{bot_id}/runs", response_model=RunPage, summary="List a bot's runs",
            responses={**_BAD, **_BOT_404})
@bff_read("bots.runs")
async def list_bot_runs(request: Request, bot_id: BotId, page: Pagination, kind: RunKind | None = None,
                        status: RunStatus | None = None, start: From = None, end: To = None) -> RunPage:
    """The bot's runs newest first; filter by kind, status and creation time [from, to)."""
    async with reading(request.app.state.ctx) as conn:
        return await service.list_bot_runs(conn, bot_id=bot_id, page=page, kind=kind, status=status,
                                           strategy=None, symbol=None, start=start, end=end)


@router.get("/bots/{bot_id}/equity", response_model=BotEquityPage, summary="A bot's equity across its runs",
            responses={**_BAD, **_BOT_404})
@bff_read("bots.equity")
async def bot_equity(request: Request, bot_id: BotId, limit: EquityLimit = 500, cursor: EquityCursor = None,
                     kind: Annotated[list[RunKind] | None, Query(description=(
                         "Run kinds to include (repeatable); default paper, shadow and live."))] = None,
                     points: Points = None, method: Method = "lttb", start: From = None,
                     end: To = None) -> Response:
    """Equity points of all the bot's runs (each tagged with `runId`) in time order over [from, to):
    keyset pages, or with `points` the whole range downsampled."""
    if points is not None and cursor is not None:
        raise ClientError("`cursor` cannot be combined with `points` (a downsampled answer is not paged).")
    body = await service.bot_equity(request.app.state.ctx, bot_id=bot_id, kinds=sorted(set(kind)) if kind else None,
                                    limit=limit, cursor=cursor, points=points, method=method, start=start, end=end)
    return Response(body, media_type=JSON)


@router.get("/bots/{bot_id}/events", response_model=BotEventPage, summary="A bot's recent events",
            responses={**_BAD, **_BOT_404})
@bff_read("bots.events")
async def list_bot_events(request: Request, bot_id: BotId, page: Pagination,
                          kind: Annotated[str | None, Query(min_length=1, max_length=64,
                                                            description="Only events of this kind.")] = None,
                          level: Annotated[str | None, Query(pattern="^(debug|info|warning|error)$")] = None,
                          start: From = None, end: To = None) -> BotEventPage:
    """The bot's events newest first; filter by kind, level and time [from, to)."""
    async with reading(request.app.state.ctx) as conn:
        return await service.list_bot_events(conn, page=page, bot_id=bot_id, kind=kind, level=level,
                                             start=start, end=end)
