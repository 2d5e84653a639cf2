"""The ExecutionModel: working orders, fills, the Decimal ledger and round trips.

Backtests and live bots share this class. The bar-by-bar loop calls ``process_bar`` on every bar;
the backtest engine calls the same ``process_bar`` only on the bars ``next_trigger`` finds (the
vectorized form of the same trigger test), which is equivalent because nothing can fill elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import numpy as np

from gordon_manager.execution.bars import Bar
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.execution.money import (
    BPS,
    CTX,
    ONE,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_UP,
    ZERO,
    dec,
    quantizer,
)
from gordon_manager.execution.orders import (
    Fill,
    Liquidity,
    Order,
    OrderReason,
    OrderType,
    Rejection,
    RoundTrip,
    Side,
)
from gordon_manager.execution.rules import (
    BpsFeeModel,
    BpsSlippageModel,
    FeeModel,
    FillModel,
    PessimisticFillModel,
    SlippageModel,
)

__all__ = ["BarEvent", "ExecutionModel"]

BarEvent = Fill | Rejection | RoundTrip

_PHASES = (OrderType.MARKET, OrderType.STOP, OrderType.LIMIT)


def _dsum(values: Iterable[Decimal]) -> Decimal:
    """Exact sum in CTX (``sum()`` would use the thread's default 28-digit context)."""
    total = ZERO
    for v in values:
        total = CTX.add(total, v)
    return total


class ExecutionModel:
    """Long/flat spot execution with a Decimal ledger (see the package docstring for every rule)."""

    def __init__(
        self,
        config: ExecutionConfig,
        *,
        fee_model: FeeModel | None = None,
        slippage_model: SlippageModel | None = None,
        fill_model: FillModel | None = None,
    ) -> None:
        self.config = config
        self.fee_model = fee_model or BpsFeeModel(
            maker_bps=config.maker_fee_bps, taker_bps=config.taker_fee_bps, cash_step=config.cash_step
        )
        self.slippage_model = slippage_model or BpsSlippageModel(bps=config.slippage_bps)
        self.fill_model = fill_model or PessimisticFillModel()
        self._price = quantizer(config.price_step)
        self._lot = quantizer(config.qty_step)
        self._money = quantizer(config.cash_step)
        # Entry sizing: the slipped price is rounded up to the tick like the fill will be, and
        # two cash steps are held back for the upward rounding of notional and fee.
        self._slip_factor = CTX.add(ONE, CTX.divide(config.slippage_bps, BPS))
        self._fee_factor = CTX.add(ONE, CTX.divide(config.taker_fee_bps, BPS))
        self._reserve = CTX.multiply(2, config.cash_step)
        self._cash: Decimal = config.initial_cash
        self._position: Decimal = ZERO
        self._fees: Decimal = ZERO
        self._orders: dict[int, Order] = {}
        self._next_id = 1
        self._trip: list[Fill] = []  # fills of the open round trip
        self._filled: dict[int, Decimal] = {}  # partly filled working orders (external fills only)
        # When a list, every submitted order is appended to it, in submission order: a bot's order
        # book reads it to name orders the model submits and fills within one bar (a bracket).
        self.journal: list[Order] | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def cash(self) -> Decimal:
        """Quote balance (exact)."""
        return self._cash

    @property
    def position(self) -> Decimal:
        """Base quantity held (exact, >= 0)."""
        return self._position

    @property
    def fees_paid(self) -> Decimal:
        """Sum of all fees charged so far."""
        return self._fees

    @property
    def open_orders(self) -> tuple[Order, ...]:
        """Working orders in submission order."""
        return tuple(self._orders.values())

    def has_open(self, *, side: Side | None = None) -> bool:
        """True if a working order (on ``side``, if given) exists."""
        if side is None:
            return bool(self._orders)
        return any(o.side is side for o in self._orders.values())

    def equity(self, close: float) -> float:
        """Mark-to-market equity: ``float(cash) + float(position) * close``, derived fresh each time."""
        return float(self._cash) + float(self._position) * close

    def entry_qty(self, ref_price: Decimal) -> Decimal:
        """Lot-rounded quantity committing ``position_fraction`` of equity at ``ref_price``.

        ``(fraction x equity - 2 cash steps) / (up_to_tick(ref x (1 + s)) x (1 + taker))``, rounded
        down to the lot: affordable when the next open equals ``ref``; if it gaps up, the fill
        clips the quantity to what cash buys.
        """
        equity = CTX.add(self._cash, CTX.multiply(self._position, ref_price))
        budget = CTX.subtract(CTX.multiply(self.config.position_fraction, equity), self._reserve)
        unit = CTX.multiply(self._price(CTX.multiply(ref_price, self._slip_factor), ROUND_UP), self._fee_factor)
        qty = self._lot(CTX.divide(budget, unit), ROUND_DOWN)
        return qty if qty > ZERO else ZERO

    # -- orders ------------------------------------------------------------------------------
    def submit(
        self,
        *,
        side: Side,
        order_type: OrderType,
        qty: Decimal,
        ts: int,
        price: Decimal | None = None,
        reason: OrderReason = OrderReason.MANUAL,
        reduce_only: bool = False,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        active_from: int | None = None,
        oco_group: int | None = None,
    ) -> Order:
        """Submit an order at bar ``ts``'s close; it may fill from the next bar on.

        Prices are put on the tick so a limit never fills worse than asked and a stop never
        triggers before its level: buy limit and sell stop round down, sell limit and buy stop up.
        Bracket levels round like the sells they become (stop loss down, take profit up).
        """
        if price is not None:
            up = (order_type is OrderType.STOP) == (side is Side.BUY)
            price = self._price(price, ROUND_UP if up else ROUND_DOWN)
        if stop_loss is not None:
            stop_loss = self._price(stop_loss, ROUND_DOWN)
        if take_profit is not None:
            take_profit = self._price(take_profit, ROUND_UP)
        order = Order(
            self._next_id,
            side,
            order_type,
            qty,
            ts,
            ts + 1 if active_from is None else active_from,
            price,
            reason,
            reduce_only,
            oco_group,
            stop_loss,
            take_profit,
        ).validate()
        self._next_id += 1
        self._orders[order.id] = order
        if self.journal is not None:
            self.journal.append(order)
        return order

    def cancel(self, order_id: int) -> bool:
        """Cancel a working order; False if it is not working."""
        return self._orders.pop(order_id, None) is not None

    # -- fills -------------------------------------------------------------------------------
    def try_fill(self, order: Order, bar: Bar) -> Fill | Rejection | None:
        """The fill this order would get on ``bar`` given the current ledger (no state change)."""
        if bar.ts < order.active_from:
            return None
        if not self.fill_model.triggered(order, bar.open, bar.high, bar.low):
            return None
        side = order.side
        adverse = ROUND_UP if side is Side.BUY else ROUND_DOWN
        base = self.fill_model.base_price(order, dec(bar.open))
        # One rounding, at the end, against the trader. A limit's own price is on the tick, and an
        # open better than it rounds to at most the limit, so a limit never fills worse than asked.
        if order.type is OrderType.LIMIT:
            price, liquidity = self._price(base, adverse), Liquidity.MAKER
        else:
            price = self._price(self.slippage_model.adjust(base, side), adverse)
            liquidity = Liquidity.TAKER
        if side is Side.SELL:
            qty = order.qty
            if self._position <= ZERO:
                return Rejection(order.id, bar.ts, "no_position")
            if qty > self._position:
                if not order.reduce_only:
                    return Rejection(order.id, bar.ts, "would_short")
                qty = self._position
            notional = self._money(CTX.multiply(qty, price), ROUND_DOWN)
            fee = self.fee_model.fee(notional, liquidity)
        else:
            sized = self._affordable(order.qty, price, liquidity)
            if sized is None:
                return Rejection(order.id, bar.ts, "insufficient_cash")
            qty, notional, fee = sized
        return Fill(order.id, bar.ts, side, order.type, order.reason, qty, price, notional, fee, liquidity)

    def _buy_cost(self, qty: Decimal, price: Decimal, liquidity: Liquidity) -> tuple[Decimal, Decimal]:
        notional = self._money(CTX.multiply(qty, price), ROUND_UP)
        return notional, self.fee_model.fee(notional, liquidity)

    def _affordable(
        self, qty: Decimal, price: Decimal, liquidity: Liquidity
    ) -> tuple[Decimal, Decimal, Decimal] | None:
        notional, fee = self._buy_cost(qty, price, liquidity)
        if CTX.add(notional, fee) <= self._cash:
            return qty, notional, fee
        if self._cash <= ZERO:
            return None
        # Gap up since sizing: clip to what cash buys. Estimate with the fee of one unit, then,
        # should the fee model not scale linearly, search the largest affordable whole lot count.
        step = self.config.qty_step
        unit = CTX.add(price, self.fee_model.fee(price, liquidity))
        estimate = min(qty, self._lot(CTX.divide(self._cash, unit), ROUND_DOWN))
        lo, hi = 0, int(CTX.divide(estimate, step)) + 1  # lo lots affordable, hi lots not
        mid = hi - 1  # the estimate itself is affordable unless the fee model is not linear
        while hi - lo > 1:
            lots = CTX.multiply(mid, step)
            notional, fee = self._buy_cost(lots, price, liquidity)
            if CTX.add(notional, fee) <= self._cash:
                lo = mid
            else:
                hi = mid
            mid = (lo + hi) // 2
        if lo == 0:
            return None
        lots = CTX.multiply(lo, step)
        notional, fee = self._buy_cost(lots, price, liquidity)
        return lots, notional, fee

    def process_bar(self, bar: Bar) -> list[BarEvent]:
        """Fill what this bar triggers: market orders at the open, then stops, then limits."""
        events: list[BarEvent] = []
        orders = self._orders
        for phase in _PHASES:
            for order in [o for o in orders.values() if o.type is phase]:
                if order.id not in orders:
                    continue  # cancelled by an earlier fill in this bar (OCO)
                outcome = self.try_fill(order, bar)
                if outcome is None:
                    continue
                del orders[order.id]
                events.append(outcome)
                if type(outcome) is Fill:
                    self._after_fill(order, outcome, bar.ts, events, outcome.qty)
        return events

    def _after_fill(self, order: Order, fill: Fill, ts: int, events: list[BarEvent],
                    bracket_qty: Decimal | None) -> None:
        """Book the fill, then: OCO siblings go, reduce-only orders go once flat, an entry gets its bracket."""
        trip = self._apply(fill)
        if trip is not None:
            events.append(trip)
        orders = self._orders
        if not orders and order.stop_loss is None and order.take_profit is None:
            return
        if order.oco_group is not None:
            for other in [o for o in orders.values() if o.oco_group == order.oco_group and o.id != order.id]:
                del orders[other.id]
        if self._position == ZERO:
            for other in [o for o in orders.values() if o.reduce_only]:
                del orders[other.id]
        if fill.side is Side.BUY and bracket_qty is not None:
            self._bracket(order, bracket_qty, ts)

    def _bracket(self, order: Order, qty: Decimal, ts: int) -> None:
        # The bracket protects the position for the rest of the fill bar (pessimistic).
        if order.stop_loss is not None:
            self.submit(side=Side.SELL, order_type=OrderType.STOP, qty=qty, ts=ts, price=order.stop_loss,
                        reason=OrderReason.STOP_LOSS, reduce_only=True, active_from=ts, oco_group=order.id)
        if order.take_profit is not None:
            self.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=qty, ts=ts, price=order.take_profit,
                        reason=OrderReason.TAKE_PROFIT, reduce_only=True, active_from=ts, oco_group=order.id)

    def _apply(self, fill: Fill) -> RoundTrip | None:
        self._fees = CTX.add(self._fees, fill.fee)
        self._trip.append(fill)
        if fill.side is Side.BUY:
            self._cash = CTX.subtract(self._cash, CTX.add(fill.notional, fill.fee))
            self._position = CTX.add(self._position, fill.qty)
            return None
        self._cash = CTX.add(self._cash, CTX.subtract(fill.notional, fill.fee))
        self._position = CTX.subtract(self._position, fill.qty)
        if self._position != ZERO:
            return None
        fills, self._trip = self._trip, []
        return self._round_trip(fills)

    def _avg_price(self, fills: list[Fill]) -> Decimal:
        if len(fills) == 1:
            return fills[0].price
        qty = _dsum(f.qty for f in fills)
        value = _dsum(CTX.multiply(f.qty, f.price) for f in fills)
        return self._price(CTX.divide(value, qty), ROUND_HALF_EVEN)

    def _round_trip(self, fills: list[Fill]) -> RoundTrip | None:
        if len(fills) == 2 and fills[0].side is Side.BUY:  # the usual one buy, one sell
            buy, sell = fills
            gross = CTX.subtract(sell.notional, buy.notional)
            fees = CTX.add(buy.fee, sell.fee)
            return RoundTrip(buy.ts, sell.ts, buy.price, sell.price, buy.qty, gross, fees,
                             CTX.subtract(gross, fees), sell.ts - buy.ts, sell.reason)
        buys = [f for f in fills if f.side is Side.BUY]
        sells = [f for f in fills if f.side is Side.SELL]
        if not buys:  # a position restored without its entry's fills: closed, but no round trip to report
            return None
        bought = buys[0].notional if len(buys) == 1 else _dsum(f.notional for f in buys)
        sold = sells[0].notional if len(sells) == 1 else _dsum(f.notional for f in sells)
        fees = CTX.add(buys[0].fee, sells[0].fee) if len(fills) == 2 else _dsum(f.fee for f in fills)
        gross = CTX.subtract(sold, bought)
        last = fills[-1]
        return RoundTrip(
            buys[0].ts,
            last.ts,
            self._avg_price(buys),
            self._avg_price(sells),
            _dsum(f.qty for f in buys) if len(buys) > 1 else buys[0].qty,
            gross,
            fees,
            CTX.subtract(gross, fees),
            last.ts - buys[0].ts,
            last.reason,
        )

    # -- recovery and fills from outside (live bots) ------------------------------------------
    def restore(self, *, cash: Decimal, position: Decimal, fees_paid: Decimal, trip: Iterable[Fill] = ()) -> None:
        """Continue a recorded ledger (a restarted bot) instead of starting flat with ``initial_cash``.

        ``trip`` holds the fills of the open round trip, so the round trip the next exit closes is the
        same as if the process had never stopped (without them the position still closes, with no
        round trip reported). Working orders are restored with ``submit``.
        """
        if position < ZERO:
            raise ValueError("a long/flat ledger cannot hold a negative position")
        self._cash, self._position, self._fees = cash, position, fees_paid
        self._trip = list(trip) if position > ZERO else []

    def protect(self, *, qty: Decimal, ts: int, stop_loss: Decimal | None,
                take_profit: Decimal | None) -> tuple[Order, ...]:
        """Submit a bracket for ``qty`` of the position: reduce-only sell stop and/or sell limit, OCO.

        What a buy's bracket becomes when it fills; used again to re-arm the bracket of a recovered
        position whose orders were cancelled by a stop.
        """
        group = self.new_group()
        legs = []
        if stop_loss is not None:
            legs.append(self.submit(side=Side.SELL, order_type=OrderType.STOP, qty=qty, ts=ts, price=stop_loss,
                                    reason=OrderReason.STOP_LOSS, reduce_only=True, active_from=ts, oco_group=group))
        if take_profit is not None:
            legs.append(self.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=qty, ts=ts, price=take_profit,
                                    reason=OrderReason.TAKE_PROFIT, reduce_only=True, active_from=ts,
                                    oco_group=group))
        return tuple(legs)

    def new_group(self) -> int:
        """A fresh OCO group id (never an order's id, so it cannot meet a bracket the model attaches)."""
        group = self._next_id
        self._next_id += 1
        return group

    def mark_filled(self, order_id: int, qty: Decimal) -> None:
        """A restored working order had already filled ``qty`` (its bracket will cover that too)."""
        self._filled[order_id] = qty

    @property
    def open_trip(self) -> tuple[Fill, ...]:
        """Fills of the open round trip (empty when flat)."""
        return tuple(self._trip)

    @property
    def average_entry(self) -> Decimal | None:
        """Quantity-weighted price of the open round trip's buys, on the tick (None when flat)."""
        buys = [f for f in self._trip if f.side is Side.BUY]
        return self._avg_price(buys) if self._position > ZERO and buys else None

    def external_fill(self, order: Order, *, qty: Decimal, price: Decimal, fee: Decimal, ts: int,
                      liquidity: Liquidity | None = None) -> Fill:
        """A fill reported from outside (the executor), in this model's units: notional rounded like ours."""
        if not qty > ZERO or not price > ZERO or fee < ZERO:
            raise ValueError("a fill needs qty > 0, price > 0 and fee >= 0")
        adverse = ROUND_UP if order.side is Side.BUY else ROUND_DOWN
        notional = self._money(CTX.multiply(qty, price), adverse)
        if liquidity is None:
            liquidity = Liquidity.MAKER if order.type is OrderType.LIMIT else Liquidity.TAKER
        return Fill(order.id, ts, order.side, order.type, order.reason, qty, price, notional, fee, liquidity)

    def apply_fill(self, order: Order, fill: Fill, *, done: bool) -> list[BarEvent]:
        """Book a fill that happened outside the model (live: the executor's truth); returns the events.

        A partial fill leaves the rest of the order working; ``done`` (or nothing left) ends it. As for
        simulated fills: OCO siblings go at the first fill, reduce-only orders go once flat, and an
        entry's bracket is submitted when the entry ends, for the whole quantity it filled. The fill is
        booked even when the order no longer works here (cancelled locally, filled before the cancel
        reached the exchange): money moved, so the ledger follows.
        """
        events: list[BarEvent] = [fill]
        filled = CTX.add(self._filled.pop(order.id, ZERO), fill.qty)
        working = self._orders.get(order.id)
        if working is not None:
            rest = CTX.subtract(working.qty, fill.qty)
            if done or rest <= ZERO:
                del self._orders[order.id]
                done = True
            else:
                self._orders[order.id] = working._replace(qty=rest)
                self._filled[order.id] = filled
        else:
            done = False  # already ended here: its bracket, if any, was settled then
        self._after_fill(order, fill, fill.ts, events, filled if done else None)
        return events

    def end_order(self, order: Order, *, ts: int) -> None:
        """An order ended outside (cancelled, expired, rejected): drop it; a partly filled entry gets its bracket."""
        if self._orders.pop(order.id, None) is None:
            return
        filled = self._filled.pop(order.id, ZERO)
        if filled > ZERO and order.side is Side.BUY and self._position > ZERO:
            self._bracket(order, min(filled, self._position), ts)

    # -- engine support ----------------------------------------------------------------------
    def next_trigger(
        self,
        *,
        ts: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        start: int,
        stop: int,
    ) -> int | None:
        """First bar index in ``[start, stop)`` on which any working order triggers, else None.

        Uses the fill model's own ``triggered`` on array slices, so it agrees with ``try_fill``.
        """
        best: int | None = None
        first_ts = int(ts[start]) if start < ts.shape[0] else None
        for order in self._orders.values():
            if first_ts is not None and order.active_from <= first_ts:
                lo = start
            else:
                lo = max(start, int(np.searchsorted(ts, order.active_from, side="left")))
            hi = stop if best is None else min(stop, best)
            if lo >= hi:
                continue
            mask = self.fill_model.triggered(order, open_[lo:hi], high[lo:hi], low[lo:hi])
            if isinstance(mask, bool | np.bool_):  # e.g. a market order: the first eligible bar
                if mask:
                    best = lo
                continue
            k = int(np.argmax(mask))
            if mask[k]:
                best = lo + k
        return best
