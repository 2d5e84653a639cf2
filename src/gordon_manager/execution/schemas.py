"""``ExecutionConfig`` on the wire, as the API and /ws send it (requests use ``backtests.schemas.ExecutionSettings``)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import ConfigDict, Field

from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.http.models import CamelModel
from gordon_manager.http.values import DecimalStr


def _doc(name: str) -> str:
    return ExecutionConfig.model_fields[name].description or ""


def _default(name: str) -> Decimal:
    default = ExecutionConfig.model_fields[name].default
    assert isinstance(default, Decimal), name  # the money fields' defaults (checked at import)
    return default


class ExecutionRead(CamelModel):
    """Execution settings as a bot or run uses them: ``ExecutionConfig`` in camelCase, every decimal an exact
    string. A member not stored (a row written with ``{}``) is the default the bot runner applies."""

    model_config = ConfigDict(extra="ignore")

    initial_cash: DecimalStr = Field(_default("initial_cash"), examples=["10000"], description=_doc("initial_cash"))
    taker_fee_bps: DecimalStr = Field(_default("taker_fee_bps"), examples=["10"], description=_doc("taker_fee_bps"))
    maker_fee_bps: DecimalStr = Field(_default("maker_fee_bps"), examples=["10"], description=_doc("maker_fee_bps"))
    slippage_bps: DecimalStr = Field(_default("slippage_bps"), examples=["1"], description=_doc("slippage_bps"))
    position_fraction: DecimalStr = Field(_default("position_fraction"), examples=["1"], description=_doc("position_fraction"))
    qty_step: DecimalStr = Field(_default("qty_step"), examples=["0.00000001"], description=_doc("qty_step"))
    price_step: DecimalStr = Field(_default("price_step"), examples=["0.00000001"], description=_doc("price_step"))
    cash_step: DecimalStr = Field(_default("cash_step"), examples=["0.00000001"], description=_doc("cash_step"))
