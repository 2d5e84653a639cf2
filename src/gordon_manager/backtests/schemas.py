"""Request and response models of the backtests API (camelCase on the wire)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.http.models import CamelModel, JsonObject
from gordon_manager.http.values import DecimalStr
from gordon_manager.runs.schemas import Rfc3339

SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
INTERVAL_PATTERN = r"^(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)$"
RunStatus = Literal["queued", "running", "done", "failed", "cancelled"]


def _default(name: str) -> Decimal:
    return ExecutionConfig.model_fields[name].default


def _doc(name: str) -> str:
    return ExecutionConfig.model_fields[name].description or ""


class ExecutionSettings(CamelModel):
    """Fees, slippage, sizing and initial cash of a run: ``ExecutionConfig`` on the wire.

    Omitted fields take the defaults shown; numbers may be sent as JSON numbers or decimal strings
    and come back as decimal strings (exact)."""

    initial_cash: DecimalStr = Field(_default("initial_cash"), gt=0, description=_doc("initial_cash"),
                                  examples=["10000"])
    taker_fee_bps: DecimalStr = Field(_default("taker_fee_bps"), ge=0, le=1000, description=_doc("taker_fee_bps"),
                                   examples=["10"])
    maker_fee_bps: DecimalStr = Field(_default("maker_fee_bps"), ge=0, le=1000, description=_doc("maker_fee_bps"),
                                   examples=["10"])
    slippage_bps: DecimalStr = Field(_default("slippage_bps"), ge=0, le=1000, description=_doc("slippage_bps"),
                                  examples=["1"])
    position_fraction: DecimalStr = Field(_default("position_fraction"), gt=0, le=1,
                                       description=_doc("position_fraction"), examples=["1"])
    qty_step: DecimalStr = Field(_default("qty_step"), gt=0, description=_doc("qty_step"), examples=["0.00001"])
    price_step: DecimalStr = Field(_default("price_step"), gt=0, description=_doc("price_step"), examples=["0.01"])
    cash_step: DecimalStr = Field(_default("cash_step"), gt=0, description=_doc("cash_step"), examples=["0.00000001"])

    def to_config(self) -> ExecutionConfig:
        """The frozen engine config these settings describe."""
        return ExecutionConfig(**self.model_dump())

    @classmethod
    def from_config(cls, config: ExecutionConfig) -> ExecutionSettings:
        """Wire form of an engine config."""
        return cls(**config.model_dump())


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
