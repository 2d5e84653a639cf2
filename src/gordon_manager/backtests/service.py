"""Rules of backtest runs: validate a request, queue it, cancel it.

Ranges are half-open on the bar open time: ``from <= open_time < to``. A request is refused before
anything is queued when its strategy, params or execution settings are invalid (422) or when no
kline lies in its range (404): a queued run always has something to run on.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from pydantic import BaseModel

from gordon_manager.backtests import repo
from gordon_manager.backtests.schemas import BacktestCancel, BacktestCreate
from gordon_manager.errors import Conflict, NotFound, Unprocessable
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.http.casing import snakify
from gordon_manager.http.problems import field_path
from gordon_manager.http.values import plain_decimal_strings
from gordon_manager.marketdata import repo as klines
from gordon_manager.strategies import InvalidParams, StrategySpec, UnknownStrategy, get_strategy

__all__ = ["cancel_backtest", "create_backtest", "validate_request"]

logger = logging.getLogger(__name__)


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def validate_request(body: BacktestCreate) -> tuple[StrategySpec, BaseModel, ExecutionConfig]:
    """The strategy, parsed params and engine config of a request; Unprocessable naming the field."""
    try:
        spec = get_strategy(body.strategy)
    except UnknownStrategy as exc:
        raise Unprocessable(str(exc), extra={"errors": [{"field": "strategy", "message": str(exc)}]}) from exc
    try:
        params = spec.parse_params(snakify(body.params))
    except InvalidParams as exc:
        errors = [{"field": field_path("params", tuple(e.get("loc", ()))), "message": e.get("msg", "")}
                  for e in exc.errors]
        raise Unprocessable(str(exc), extra={"errors": errors}) from exc
    if body.from_ >= body.to:
        raise Unprocessable(f"the range is empty: from ({_iso(body.from_)}) must be before to ({_iso(body.to)})",
                            extra={"errors": [{"field": "to", "message": "must be after from"}]})
    return spec, params, body.execution.to_config()


async def create_backtest(conn: asyncpg.Connection, *, body: BacktestCreate, actor: str,
                          runner: str = "manager") -> asyncpg.Record:
    """Validate and queue a backtest run; returns its id, status and created_at."""
    spec, params, config = validate_request(body)
    if not await klines.has_klines(conn, symbol=body.symbol, interval=body.interval, start=body.from_, end=body.to):
        raise NotFound(f"no klines for {body.symbol} {body.interval} between {_iso(body.from_)} and "
                       f"{_iso(body.to)} (import some with `gordon-manager data import-klines`)")
    row = await repo.insert_run(conn, strategy=spec.name, params=params.model_dump(mode="json"), symbol=body.symbol,
                                interval=body.interval, range_start=body.from_, range_end=body.to,
                                config=plain_decimal_strings(config.model_dump(mode="json")), created_by=actor,
                                runner=runner)
    logger.info("backtest queued", extra={"run_id": row["id"], "strategy": spec.name, "symbol": body.symbol,
                                          "interval": body.interval, "runner": runner})
    return row


async def cancel_backtest(conn: asyncpg.Connection, *, run_id: int) -> BacktestCancel:
    """Cancel a queued run at once or ask a running one to stop; 404 unknown, 409 already finished."""
    row = await repo.request_cancel(conn, run_id=run_id)
    if row is None:
        existing = await repo.get_run(conn, run_id=run_id)
        if existing is None:
            raise NotFound(f"no backtest run {run_id}")
        raise Conflict(f"backtest run {run_id} is already {existing['status']}")
    logger.info("backtest cancel requested", extra={"run_id": run_id, "status": row["status"]})
    return BacktestCancel(id=row["id"], status=row["status"], cancel_requested=row["cancel_requested"])
