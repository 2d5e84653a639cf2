"""Pluggable fill, fee and slippage models: small frozen classes, each overriding one rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gordon_manager.execution.money import BPS, CTX, ONE, ROUND_UP, ZERO, quantizer
from gordon_manager.execution.orders import Liquidity, Order, OrderType, Side

__all__ = [
    "BpsFeeModel",
    "BpsSlippageModel",
    "FeeModel",
    "FillModel",
    "PessimisticFillModel",
    "SlippageModel",
]


@dataclass(frozen=True, slots=True)
class FeeModel:
    """Fee charged on a fill's notional."""

    def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
        """Fee in quote currency for a fill of ``notional``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class BpsFeeModel(FeeModel):
    """``notional x bps / 10000``, rounded up to ``cash_step`` (never in the trader's favour)."""

    maker_bps: Decimal
    taker_bps: Decimal
    cash_step: Decimal
    _maker_rate: Decimal = field(init=False, repr=False, compare=False)
    _taker_rate: Decimal = field(init=False, repr=False, compare=False)
    _round: Callable[[Decimal, str], Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # bps / 10000 is exact in CTX; computing it once keeps the per-fill path short.
        object.__setattr__(self, "_maker_rate", CTX.divide(Decimal(self.maker_bps), BPS))
        object.__setattr__(self, "_taker_rate", CTX.divide(Decimal(self.taker_bps), BPS))
        object.__setattr__(self, "_round", quantizer(Decimal(self.cash_step)))

    def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
        """Maker or taker bps of the notional, rounded up."""
        rate = self._maker_rate if liquidity is Liquidity.MAKER else self._taker_rate
        if rate == ZERO:
            return ZERO
        return self._round(CTX.multiply(notional, rate), ROUND_UP)


@dataclass(frozen=True, slots=True)
class SlippageModel:
    """Moves a market/stop fill's base price against the trader (rounding is the model's job)."""

    def adjust(self, price: Decimal, side: Side) -> Decimal:
        """The slipped price, before tick rounding."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class BpsSlippageModel(SlippageModel):
    """A buy pays ``price x (1 + bps/1e4)``; a sell receives ``price x (1 - bps/1e4)``."""

    bps: Decimal
    _buy: Decimal = field(init=False, repr=False, compare=False)
    _sell: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frac = CTX.divide(Decimal(self.bps), BPS)
        object.__setattr__(self, "_buy", CTX.add(ONE, frac))
        object.__setattr__(self, "_sell", CTX.subtract(ONE, frac))

    def adjust(self, price: Decimal, side: Side) -> Decimal:
        """Adverse slippage of a fixed number of basis points."""
        if self.bps == ZERO:
            return price
        return CTX.multiply(price, self._buy if side is Side.BUY else self._sell)


@dataclass(frozen=True, slots=True)
class FillModel:
    """Decides whether an order triggers on a bar and at what base price it fills."""

    def triggered(self, order: Order, open_: Any, high: Any, low: Any) -> Any:
        """Trigger test; must work on floats and, elementwise, on float64 arrays (engine search)."""
        raise NotImplementedError

    def base_price(self, order: Order, open_: Decimal) -> Decimal:
        """Fill price before slippage, given a triggered order and the bar's open."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class PessimisticFillModel(FillModel):
    """Limits fill only when traded through; stops trigger on a touch and fill at the worse price."""

    def triggered(self, order: Order, open_: Any, high: Any, low: Any) -> Any:
        """Market: always. Limit: strictly through. Stop: touched."""
        if order.type is OrderType.MARKET:
            return True
        if order.type is OrderType.LIMIT:
            return low < order.level if order.side is Side.BUY else high > order.level
        return high >= order.level if order.side is Side.BUY else low <= order.level

    def base_price(self, order: Order, open_: Decimal) -> Decimal:
        """Market: open. Limit: its price, or the open if already better. Stop: worse of stop and open."""
        if order.type is OrderType.MARKET:
            return open_
        assert order.price is not None
        buy = order.side is Side.BUY
        if order.type is OrderType.LIMIT:
            return min(order.price, open_) if buy else max(order.price, open_)
        return max(order.price, open_) if buy else min(order.price, open_)
