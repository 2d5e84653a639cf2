"""Orders and the events an ExecutionModel emits (fills, rejections, round trips, decisions).

Events are immutable NamedTuples: a backtest creates tens of thousands of them and a NamedTuple
is built ~4x faster than a frozen dataclass; ``_asdict()`` serialises one.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Decision",
    "EquityPoint",
    "Fill",
    "Liquidity",
    "Order",
    "OrderReason",
    "OrderType",
    "Rejection",
    "RoundTrip",
    "Side",
]


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order type; each has its own fill rule (see the execution package docstring)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class Liquidity(StrEnum):
    """Which fee applies: limit fills are maker, market and stop fills are taker."""

    MAKER = "maker"
    TAKER = "taker"


class OrderReason(StrEnum):
    """Why an order exists; carried onto its fill and onto the round trip it closes."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    MANUAL = "manual"
    FLATTEN = "flatten"


class Order(NamedTuple):
    """A working order. ``active_from`` is the first bar ts (inclusive) on which it may fill.

    ``level`` is ``float(price)``: trigger tests compare bar floats with it, identically in the
    per-bar loop and in the engine's vectorized search. ``stop_loss``/``take_profit`` on a buy are
    the bracket the model attaches, as one-cancels-other reduce-only sells, when the buy fills.
    Build orders with ``ExecutionModel.submit`` (it validates them and assigns ids).
    """

    id: int
    side: Side
    type: OrderType
    qty: Decimal
    submitted_ts: int
    active_from: int
    price: Decimal | None = None
    reason: OrderReason = OrderReason.MANUAL
    reduce_only: bool = False
    oco_group: int | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None

    @property
    def level(self) -> float:
        """The price as float64 (NaN for a market order)."""
        return float(self.price) if self.price is not None else math.nan

    def validate(self) -> Order:
        """Return self, or raise ValueError if the order is malformed."""
        if not self.qty > 0:
            raise ValueError("order qty must be > 0")
        if self.type is OrderType.MARKET:
            if self.price is not None:
                raise ValueError("a market order has no price")
        elif self.price is None or not self.price > 0:
            raise ValueError(f"a {self.type} order needs a price > 0")
        if (self.stop_loss is not None or self.take_profit is not None) and self.side is not Side.BUY:
            raise ValueError("brackets attach to buy orders only (long/flat)")
        for level in (self.stop_loss, self.take_profit):
            if level is not None and not level > 0:
                raise ValueError("bracket levels must be > 0")
        return self


class Fill(NamedTuple):
    """An executed order: ``notional`` = qty x price rounded against us, ``fee`` in quote currency."""

    order_id: int
    ts: int
    side: Side
    order_type: OrderType
    reason: OrderReason
    qty: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal
    liquidity: Liquidity


class Rejection(NamedTuple):
    """An order that triggered but could not be filled (e.g. not enough cash for one lot)."""

    order_id: int
    ts: int
    reason: str


class RoundTrip(NamedTuple):
    """Flat -> long -> flat. PnL uses the quantized cash flows, so net PnLs sum to the cash change.

    ``gross_pnl`` = exit notional - entry notional; ``net_pnl`` = gross - fees (entry + exit);
    prices are quantity-weighted averages; ``duration_ms`` = exit ts - entry ts (fill bar times).
    """

    entry_ts: int
    exit_ts: int
    entry_price: Decimal
    exit_price: Decimal
    qty: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    duration_ms: int
    exit_reason: OrderReason


class Decision(NamedTuple):
    """What a strategy decided at a bar's close (what a live bot writes to ``trading.bot_decisions``).

    ``price`` is the reference price: the decision bar's close for market orders.
    """

    ts: int
    side: Side
    qty: Decimal
    order_type: OrderType
    price: Decimal
    reason: OrderReason
    order_id: int
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class EquityPoint(NamedTuple):
    """Mark-to-market equity at a bar's close."""

    ts: int
    equity: float
