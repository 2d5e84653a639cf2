"""Request and response models of the backtests API (camelCase on the wire)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gordon_manager.execution.schemas import ExecutionSettings
from gordon_manager.http.models import CamelModel, JsonObject
from gordon_manager.http.values import Rfc3339

SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
INTERVAL_PATTERN = r"^(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)$"
RunStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class BacktestCreate(CamelModel):
    """POST /backtests body: what to run, on which bars, with which execution settings."""

    strategy: str = Field(min_length=1, max_length=64, examples=["sma_crossover"],
                          description="A strategy name from GET /strategies.")
    params: JsonObject = Field(default_factory=dict, examples=[{"fast": 10, "slow": 30}],
                                   description="Strategy parameters (camelCase or snake_case); omitted ones take "
                                               "the strategy's defaults.")
    symbol: str = Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])
    interval: str = Field(pattern=INTERVAL_PATTERN, examples=["1m"])
    from_: Rfc3339 = Field(alias="from", examples=["2024-01-01T00:00:00Z"],
                                 description="First bar's open time, inclusive (RFC 3339 with offset).")
    to: Rfc3339 = Field(examples=["2024-02-01T00:00:00Z"],
                              description="End of the range, exclusive: bars opening before it are used.")
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings,
                                         description="Fees, slippage, sizing, initial cash.")


class BacktestAccepted(CamelModel):
    """The run a POST /backtests queued; follow it at ``runUrl`` (or the Location header)."""

    id: int = Field(examples=[42], description="Run id (trading.runs).")
    status: RunStatus = Field(examples=["queued"])
    run_url: str = Field(examples=["/runs/42"], description="Where the run, its equity and round trips are read.")


class BacktestCancel(CamelModel):
    """State of a run after POST /backtests/{id}/cancel."""

    id: int = Field(examples=[42])
    status: RunStatus = Field(examples=["running"], description="'cancelled' at once for a queued run; a running "
                                                                "run stays 'running' until its worker stops.")
    cancel_requested: bool = Field(examples=[True])
