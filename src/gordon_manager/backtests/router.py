"""HTTP routes of backtests: queue a run, cancel it (reads are GET /runs/{id} and its children)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from gordon_manager.backtests import service
from gordon_manager.backtests.schemas import BacktestAccepted, BacktestCancel, BacktestCreate
from gordon_manager.http.auth import Operator

router = APIRouter(tags=["backtests"])

RunId = Annotated[int, Path(ge=1, le=2**62, description="Run id.")]
_AUTH = {401: {"description": "Missing operator token"}, 403: {"description": "Wrong operator token"}}


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
