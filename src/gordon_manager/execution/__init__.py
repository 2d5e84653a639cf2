"""Execution: orders, fills, fees, slippage and the ledger, shared by backtests and live bots.

One ``ExecutionModel`` serves both the vectorized backtest engine and the bar-by-bar ``BarLoop``;
the parity test holds them to identical fills, round trips and equity.

Timing
  * A decision is taken at a bar's close; the order it submits is first eligible on the next bar
    (``active_from = ts + 1``). Nothing ever fills on the bar that produced the decision.
  * Within one bar orders are tried in phases: market orders (at the open), then stops, then
    limits; inside a phase, in submission order.

Fill rules (``PessimisticFillModel``; ``s`` = slippage_bps / 10000)
  * Market: fills at the bar's open. Buy pays ``open x (1 + s)``, sell receives ``open x (1 - s)``.
    Taker fee.
  * Limit: fills only when the bar trades *through* the price, never on a touch: buy limit needs
    ``low < limit``, sell limit ``high > limit`` (strict). Fill price is the limit, or the open if
    the open is already better (buy: ``min(limit, open)``, sell: ``max(limit, open)``). No
    slippage. Maker fee.
  * Stop: triggers on a touch: buy stop ``high >= stop``, sell stop ``low <= stop``. Fills at the
    worse of stop and open (buy: ``max``, sell: ``min``), then slippage as for market. Taker fee.
  * Stop before target: stops are tried before limits, and a bracket's stop loss and take profit
    are one-cancels-other, so a bar that touches both exits at the stop.
  * Trigger tests compare the bar's float64 values with ``float(order price)``; the engine's
    vectorized search uses the very same ``FillModel.triggered`` on arrays.

Brackets
  * A buy may carry ``stop_loss`` / ``take_profit``. When it fills, the model submits a reduce-only
    sell stop and sell limit (OCO) for the filled quantity, active from the fill bar itself: the
    price may reach them after the open.
  * When the position returns to zero every reduce-only order is cancelled.

Ledger and rounding (Decimal, see ``money``)
  * Cash, position, fees and fill prices are ``decimal.Decimal``; fills are sparse so exactness
    is free. Bar floats enter via their shortest repr (``dec``).
  * Every rounding goes against the trader: fill prices are put on ``price_step`` once, after
    slippage (buys up, sells down); buy notionals round up and sell notionals down to ``cash_step``; fees round up to
    ``cash_step``. After that, cash arithmetic is exact, so nothing drifts: the sum of round-trip
    net PnLs equals the change in cash, to the last unit.
  * Buy: ``cash -= notional + fee``; sell: ``cash += notional - fee``. Fee = notional x bps / 1e4
    (maker for limits, taker otherwise).
  * Order prices are put on the tick so a limit never fills worse than asked and a stop never
    triggers before its level (buy limit and sell stop round down, sell limit and buy stop up).

Sizing and constraints (long/flat spot)
  * Entry quantity = ``(position_fraction x equity - 2 x cash_step) / (up_to_tick(close x (1 + s))
    x (1 + taker))`` at the decision bar's close, rounded down to ``qty_step``: affordable when the
    next open equals the close. If the next open gaps so that cash cannot
    pay, the fill is clipped to what cash buys; below one lot it is rejected ("insufficient_cash").
  * A sell larger than the position is clipped if reduce-only, else rejected ("would_short"); a
    sell with no position is rejected ("no_position"). There is no shorting and no leverage.

Equity
  * Mark-to-market equity at a bar's close is the float64 ``float(cash) + float(position) x close``,
    computed fresh from the exact ledger each bar, never accumulated, so float error cannot drift.

Round trips
  * Flat -> long -> flat. Entry/exit prices are quantity-weighted averages; gross PnL is sell
    notional minus buy notional; fees are entry plus exit fees; net = gross - fees; duration is
    exit fill ts - entry fill ts.
"""

from gordon_manager.execution.bars import Bar, Bars, validate_bar
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.execution.model import BarEvent, ExecutionModel
from gordon_manager.execution.money import dec, quantize
from gordon_manager.execution.orders import (
    Decision,
    EquityPoint,
    Fill,
    Liquidity,
    Order,
    OrderReason,
    OrderType,
    Rejection,
    RoundTrip,
    Side,
)
from gordon_manager.execution.policy import decide
from gordon_manager.execution.rules import (
    BpsFeeModel,
    BpsSlippageModel,
    FeeModel,
    FillModel,
    PessimisticFillModel,
    SlippageModel,
)

__all__ = [
    "Bar",
    "BarEvent",
    "Bars",
    "BpsFeeModel",
    "BpsSlippageModel",
    "Decision",
    "EquityPoint",
    "ExecutionConfig",
    "ExecutionModel",
    "FeeModel",
    "Fill",
    "FillModel",
    "Liquidity",
    "Order",
    "OrderReason",
    "OrderType",
    "PessimisticFillModel",
    "Rejection",
    "RoundTrip",
    "Side",
    "SlippageModel",
    "dec",
    "decide",
    "quantize",
    "validate_bar",
]
