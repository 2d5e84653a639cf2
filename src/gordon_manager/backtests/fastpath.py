"""The engine's fast path: market-order-only long/flat runs, stepped fill to fill.

When it applies (``applies``): the default fee, slippage and fill models (``BpsFeeModel``,
``BpsSlippageModel``, ``PessimisticFillModel``), power-of-ten steps (price, qty, cash: the usual
``1e-8``, ``0.001``, ...), and signals without a bracket (no finite ``stop_loss`` / ``take_profit``).
Then the only orders are the decision rule's market orders, at most one working at a time, and a
run is a fixed alternation that needs no order book:

* flat: the next entry bar ``d`` -> ``decide`` sizes ``entry_qty(close[d])`` (no decision if that
  is 0); the buy fills, is clipped or is rejected on the open of ``d + 1``, whose close is decided
  next (it sees the fill);
* long: the next exit bar ``e`` -> a sell of the whole position fills on the open of ``e + 1``.

Why it is exact: it evaluates the reference ``ExecutionModel``'s Decimal expressions one for one
(``entry_qty``, ``try_fill``, ``_buy_cost``, ``_apply``, ``_round_trip``, ``BpsFeeModel.fee``,
``BpsSlippageModel.adjust``; a power-of-ten quantizer *is* ``Decimal.quantize`` in ``CTX``), in the
same order, in the same context, on the same inputs (the shortest repr of the same bar floats), and
hands the rare paths (a buy clipped or rejected after a gap up) to the model's own ``_affordable``.
What is skipped is machinery that cannot act on one market order: ``Bar`` and ``Order`` objects, the
phase loop, OCO and bracket bookkeeping, the trigger search (a market order triggers on its first
eligible bar). So the fills, decisions, round trips, rejections, ledger and equity are identical,
value and representation, to the generic walk's; tests/backtests/test_fastpath.py checks that on
random series and configs, and the live-parity tests run through this path.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np

from gordon_manager.execution import (
    Bars,
    BpsFeeModel,
    BpsSlippageModel,
    Decision,
    ExecutionModel,
    Fill,
    PessimisticFillModel,
    Rejection,
    RoundTrip,
)
from gordon_manager.execution.money import CTX, ROUND_DOWN, ROUND_UP, ZERO
from gordon_manager.execution.orders import Liquidity, OrderReason, OrderType, Side
from gordon_manager.strategies.base import Signals

__all__ = ["Segments", "applies", "run_market_only"]

_CHECK_EVERY = 256  # round trips between cancellation checks / progress reports

Segments = tuple[list[int], list[float], list[float]]


def _no_level(levels: np.ndarray | None) -> bool:
    return levels is None or not bool(np.isfinite(np.asarray(levels, dtype=np.float64)).any())


def _power_of_ten(step: Decimal) -> bool:
    return step.as_tuple().digits == (1,)


def applies(model: ExecutionModel, sig: Signals) -> bool:
    """True when the run has only the decision rule's market orders, the default models and
    power-of-ten steps (see the module docstring)."""
    cfg = model.config
    return (
        type(model.fee_model) is BpsFeeModel
        and type(model.slippage_model) is BpsSlippageModel
        and type(model.fill_model) is PessimisticFillModel
        and model.fee_model.cash_step == cfg.cash_step
        and all(_power_of_ten(s) for s in (cfg.price_step, cfg.qty_step, cfg.cash_step))
        and _no_level(sig.stop_loss)
        and _no_level(sig.take_profit)
        and not model.has_open()
        and model.position == ZERO
    )


def run_market_only(
    model: ExecutionModel,
    bars: Bars,
    sig: Signals,
    fills: list[Fill],
    decisions: list[Decision],
    trips: list[RoundTrip],
    rejections: list[Rejection],
    checkpoint: Callable[[float], None],
) -> Segments:
    """Run the alternation above on a fresh, flat ``model``; returns the (start, cash, qty) segments.

    Events go into the lists given, as the generic walk would produce them; the model's ledger (cash,
    position, fees, open trip, order ids) ends where the generic walk leaves it.
    """
    n = len(bars)
    cfg = model.config
    ent = np.flatnonzero(sig.entry)
    ext = np.flatnonzero(sig.exit)
    # Everything the loop reads of the bars, gathered once as Python scalars: the decision bar's
    # time and close, and the next bar's time and open (the fill bar; clipped at the last bar).
    ent_l, ext_l = ent.tolist(), ext.tolist()
    e1, x1 = np.minimum(ent + 1, n - 1), np.minimum(ext + 1, n - 1)
    ent_ts, ent_close = bars.ts[ent].tolist(), bars.close[ent].tolist()
    ent_fts, ent_fopen = bars.ts[e1].tolist(), bars.open[e1].tolist()
    ext_ts, ext_close = bars.ts[ext].tolist(), bars.close[ext].tolist()
    ext_fts, ext_fopen = bars.ts[x1].tolist(), bars.open[x1].tolist()
    n_ent, n_ext = len(ent_l), len(ext_l)

    mul, add, sub, div = CTX.multiply, CTX.add, CTX.subtract, CTX.divide
    price_step, qty_step, cash_step = cfg.price_step, cfg.qty_step, cfg.cash_step
    fraction = cfg.position_fraction
    whole = fraction == 1
    slip_factor, fee_factor, reserve = model._slip_factor, model._fee_factor, model._reserve
    slip, fee_model = model.slippage_model, model.fee_model
    assert isinstance(slip, BpsSlippageModel) and isinstance(fee_model, BpsFeeModel)  # applies() checked their types
    slipping = slip.bps != ZERO
    sizing_slip = slip_factor != 1  # entry sizing uses the config's slippage (the fills, the model's)
    slip_buy, slip_sell = slip._buy, slip._sell
    taker_rate = fee_model._taker_rate
    charging = taker_rate != ZERO
    buy, sell, market, taker = Side.BUY, Side.SELL, OrderType.MARKET, Liquidity.TAKER
    r_entry, r_exit = OrderReason.ENTRY, OrderReason.EXIT
    ctx = CTX
    new = tuple.__new__  # a NamedTuple built without its Python-level __new__ (same object)

    cash, position, fees = model._cash, model._position, model._fees
    next_id = model._next_id
    open_buy: Fill | None = None
    seg_start = [0]
    seg_cash = [float(cash)]
    seg_qty = [float(position)]
    decide_from = 0
    k = j = 0  # next candidate entry / exit (indices into ent_l / ext_l)
    steps = 0
    while True:
        steps += 1
        if steps % _CHECK_EVERY == 0:
            checkpoint(decide_from / n)
        # -- flat: the next entry the rule acts on (decide) -----------------------------------
        while k < n_ent and ent_l[k] < decide_from:
            k += 1
        if k >= n_ent:
            break
        d = ent_l[k]
        close = Decimal(repr(ent_close[k]))
        # ExecutionModel.entry_qty. Flat, its equity is cash + 0 x close: the value of cash. Only values
        # reach the final quantize (whose exponent is the lot's), so the multiplications by the
        # exact 1 (position_fraction 1, no slippage) are left out too: same values, same qty.
        budget = sub(cash if whole else mul(fraction, cash), reserve)
        unit = mul((mul(close, slip_factor) if sizing_slip else close).quantize(price_step, ROUND_UP, ctx), fee_factor)
        qty = div(budget, unit).quantize(qty_step, ROUND_DOWN, ctx)
        if not qty > ZERO:
            decide_from = d + 1
            continue
        order_id = next_id
        next_id += 1
        decisions.append(new(Decision, (ent_ts[k], buy, qty, market, close, r_entry, order_id, None, None)))
        f = d + 1
        if f >= n:
            break  # the order is still working when the bars end
        # try_fill, market buy at the open of f
        t = ent_fts[k]
        base = Decimal(repr(ent_fopen[k]))
        price = (mul(base, slip_buy) if slipping else base).quantize(price_step, ROUND_UP, ctx)
        notional = mul(qty, price).quantize(cash_step, ROUND_UP, ctx)  # _buy_cost
        fee = mul(notional, taker_rate).quantize(cash_step, ROUND_UP, ctx) if charging else ZERO
        cost = add(notional, fee)
        if not cost <= cash:
            model._cash = cash
            sized = model._affordable(qty, price, taker)  # gap up: clip (or reject), the model's way
            if sized is None:
                rejections.append(new(Rejection, (order_id, t, "insufficient_cash")))
                decide_from = f
                continue
            qty, notional, fee = sized
            cost = add(notional, fee)
        fill = new(Fill, (order_id, t, buy, market, r_entry, qty, price, notional, fee, taker))
        fills.append(fill)
        # _apply (buy)
        fees = add(fees, fee)
        cash = sub(cash, cost)
        position = add(position, qty)
        open_buy = fill
        seg_start.append(f)
        seg_cash.append(float(cash))
        seg_qty.append(float(position))
        # -- long: the next exit (decide) -------------------------------------------------------
        while j < n_ext and ext_l[j] < f:
            j += 1
        if j >= n_ext:
            break
        e = ext_l[j]
        order_id = next_id
        next_id += 1
        decisions.append(new(Decision, (ext_ts[j], sell, position, market, Decimal(repr(ext_close[j])), r_exit,
                                        order_id, None, None)))
        f = e + 1
        if f >= n:
            break
        # try_fill, market sell of the whole position at the open of f
        t = ext_fts[j]
        base = Decimal(repr(ext_fopen[j]))
        price = (mul(base, slip_sell) if slipping else base).quantize(price_step, ROUND_DOWN, ctx)
        notional = mul(position, price).quantize(cash_step, ROUND_DOWN, ctx)
        fee = mul(notional, taker_rate).quantize(cash_step, ROUND_UP, ctx) if charging else ZERO
        fill = new(Fill, (order_id, t, sell, market, r_exit, position, price, notional, fee, taker))
        fills.append(fill)
        # _apply (sell) and _round_trip of the usual one buy, one sell
        fees = add(fees, fee)
        cash = add(cash, sub(notional, fee))
        flat = sub(position, position)  # the model's position after the sell (zero, in its exponent)
        b = open_buy
        assert b is not None
        gross = sub(notional, b.notional)
        trip_fees = add(b.fee, fee)
        trips.append(new(RoundTrip, (b.ts, t, b.price, price, b.qty, gross, trip_fees, sub(gross, trip_fees),
                                     t - b.ts, r_exit)))
        open_buy = None
        position = flat
        seg_start.append(f)
        seg_cash.append(float(cash))
        seg_qty.append(0.0)
        decide_from = f
    model._cash, model._position, model._fees, model._next_id = cash, position, fees, next_id
    model._trip = [open_buy] if open_buy is not None else []
    return seg_start, seg_cash, seg_qty

