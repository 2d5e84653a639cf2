"""HTTP routes of backtests: queue a run, cancel it (reads are GET /runs/{id} and its children); parameter
sweeps (queue, list, read with ranked trials and a heatmap, cancel, re-run a trial as a run)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from gordon_manager.backtests import service, sweep_service
from gordon_manager.backtests.schemas import BacktestAccepted, BacktestCancel, BacktestCreate
from gordon_manager.backtests.sweep_schemas import SweepAccepted, SweepCancel, SweepCreate, SweepDetail, SweepPage
from gordon_manager.http.auth import Operator
from gordon_manager.http.openapi import Responses
from gordon_manager.http.pagination import Pagination

router = APIRouter(tags=["backtests"])

RunId = Annotated[int, Path(ge=1, le=2**62, description="Run id.")]
SweepId = Annotated[int, Path(ge=1, le=2**62, description="Sweep id.")]
TrialN = Annotated[int, Path(ge=0, le=2**31 - 1, description="Trial number (0-based).")]
SweepStatus = Annotated[str | None, Query(pattern="^(queued|running|done|failed|cancelled)$",
                                          description="Only sweeps in this status.")]
_AUTH: Responses = {401: {"description": "Missing operator token"}, 403: {"description": "Wrong operator token"}}


@router.post("/backtests", status_code=202, response_model=BacktestAccepted, summary="Queue a backtest",
             responses={**_AUTH, 404: {"description": "No klines in the requested range"},
                        422: {"description": "Unknown strategy, invalid params, execution settings or range"}})
async def create_backtest(body: BacktestCreate, request: Request, response: Response,
                          actor: Operator) -> BacktestAccepted:
    """Queue a backtest; it runs in a worker process. Follow it at GET /runs/{id} (progress, stats)."""
    ctx = request.app.state.ctx
    async with ctx.pool.acquire() as conn:
        row = await service.create_backtest(conn, body=body, actor=actor)
    runner = ctx.services.backtests
    if runner is not None:
        runner.wake()
    run_url = f"/runs/{row['id']}"
    response.headers["Location"] = run_url
    return BacktestAccepted(id=row["id"], status=row["status"], run_url=run_url)


@router.post("/backtests/{run_id}/cancel", status_code=202, response_model=BacktestCancel,
             summary="Cancel a backtest",
             responses={**_AUTH, 404: {"description": "No such backtest run"},
                        409: {"description": "The run already finished"}})
async def cancel_backtest(run_id: RunId, request: Request, actor: Operator) -> BacktestCancel:
    """A queued run is cancelled at once; a running one stops at its worker's next check (< 1 s)."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return await service.cancel_backtest(conn, run_id=run_id)


def _wake(runner: Any) -> None:
    if runner is not None:
        runner.wake()


@router.post("/backtests/sweeps", status_code=202, response_model=SweepAccepted, summary="Queue a parameter sweep",
             responses={**_AUTH, 404: {"description": "No klines in the requested range"},
                        422: {"description": "Unknown strategy or param, invalid grid, search, params or range"}})
async def create_sweep(body: SweepCreate, request: Request, response: Response, actor: Operator) -> SweepAccepted:
    """Queue a grid or seeded random search over a strategy's params; trials run on the manager's process
    pool. Follow it at GET /backtests/sweeps/{id} or on /ws (channel backtest_sweeps)."""
    async with request.app.state.ctx.pool.acquire() as conn:
        row, dropped = await sweep_service.create_sweep(conn, body=body, actor=actor)
    _wake(request.app.state.ctx.services.sweeps)
    url = f"/backtests/sweeps/{row['id']}"
    response.headers["Location"] = url
    return SweepAccepted(id=row["id"], status=row["status"], trials_total=row["trials_total"],
                         trials_dropped=dropped, sweep_url=url)


@router.get("/backtests/sweeps", response_model=SweepPage, summary="List parameter sweeps",
            responses={400: {"description": "Invalid cursor (problem+json)"},
                       422: {"description": "Invalid limit or status (problem+json)"}})
async def list_sweeps(request: Request, page: Pagination, status: SweepStatus = None) -> SweepPage:
    """Sweeps newest first (cursor paging)."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return await sweep_service.list_sweeps(conn, page=page, status=status)


@router.get("/backtests/sweeps/{sweep_id}", response_model=SweepDetail, summary="Get a parameter sweep",
            responses={404: {"description": "No such sweep"}, 422: {"description": "x or y is not a swept param"}})
async def get_sweep(sweep_id: SweepId, request: Request,
                    limit: Annotated[int, Query(ge=1, le=1000, description="Trials returned (best first).")] = 100,
                    x: Annotated[str | None, Query(max_length=64, description="Heatmap x param.")] = None,
                    y: Annotated[str | None, Query(max_length=64, description="Heatmap y param.")] = None,
                    ) -> SweepDetail:
    """Progress, the ranked trials (stats, no equity), the best, and a 2-param heatmap of the objective."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return await sweep_service.get_sweep(conn, sweep_id=sweep_id, limit=limit, x=x, y=y)


@router.post("/backtests/sweeps/{sweep_id}/cancel", status_code=202, response_model=SweepCancel,
             summary="Cancel a parameter sweep",
             responses={**_AUTH, 404: {"description": "No such sweep"},
                        409: {"description": "The sweep already finished"}})
async def cancel_sweep(sweep_id: SweepId, request: Request, actor: Operator) -> SweepCancel:
    """A queued sweep is cancelled at once; a running one stops after its chunks in flight (finished trials
    are kept)."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return await sweep_service.cancel_sweep(conn, sweep_id=sweep_id)


@router.post("/backtests/sweeps/{sweep_id}/trials/{n}/run", status_code=202, response_model=BacktestAccepted,
             summary="Re-run a sweep trial as a backtest",
             responses={**_AUTH, 404: {"description": "No such sweep or trial, or its klines are gone"}})
async def run_sweep_trial(sweep_id: SweepId, n: TrialN, request: Request, response: Response,
                          actor: Operator) -> BacktestAccepted:
    """Queue the trial's params as a full backtest run (equity, round trips), like POST /backtests."""
    async with request.app.state.ctx.pool.acquire() as conn:
        row = await sweep_service.run_trial(conn, sweep_id=sweep_id, n=n, actor=actor)
    _wake(request.app.state.ctx.services.backtests)
    run_url = f"/runs/{row['id']}"
    response.headers["Location"] = run_url
    return BacktestAccepted(id=row["id"], status=row["status"], run_url=run_url)
