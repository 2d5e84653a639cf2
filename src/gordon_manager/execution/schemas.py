"""``ExecutionConfig`` on the wire: ``ExecutionSettings`` as requests send it, ``ExecutionRead`` as the API and /ws answer."""

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
