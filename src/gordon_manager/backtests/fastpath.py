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

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import repeat
from typing import NamedTuple

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
from gordon_manager.execution.money import CTX, ONE, ROUND_DOWN, ROUND_UP, ZERO
from gordon_manager.execution.orders import Liquidity, OrderReason, OrderType, Side
from gordon_manager.stats import TripColumns
from gordon_manager.strategies.base import Signals

__all__ = ["Exponents", "ScaledRun", "Segments", "applies", "run_columns", "run_decimal", "run_market_only", "run_scaled"]

_CHECK_EVERY = 256  # round trips between cancellation checks / progress reports

Segments = tuple[list[int], list[float], list[float]]


class _Candidates(NamedTuple):
    """Everything both loops read of the bars, gathered once as Python scalars: the candidate entry and
    exit bars, each one's time and close (the decision), and its next bar (the fill bar, clipped at the
    last bar: ``e1`` / ``x1``) with that bar's time."""

    n: int
    ent: np.ndarray
    ext: np.ndarray
    e1: np.ndarray
    x1: np.ndarray
    ent_l: list[int]
    ext_l: list[int]
    ent_ts: list[int]
    ent_close: list[float]
    ent_fts: list[int]
    ext_ts: list[int]
    ext_close: list[float]
    ext_fts: list[int]


def _candidates(bars: Bars, sig: Signals) -> _Candidates:
    n = len(bars)
    ent, ext = np.flatnonzero(sig.entry), np.flatnonzero(sig.exit)
    e1, x1 = np.minimum(ent + 1, n - 1), np.minimum(ext + 1, n - 1)
    return _Candidates(n, ent, ext, e1, x1, ent.tolist(), ext.tolist(), bars.ts[ent].tolist(),
                       bars.close[ent].tolist(), bars.ts[e1].tolist(), bars.ts[ext].tolist(),
                       bars.close[ext].tolist(), bars.ts[x1].tolist())


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
        and model.fee_model.cash_step.as_tuple() == cfg.cash_step.as_tuple()  # the same exponent, not only value
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
    position, fees, open trip, order ids) ends where the generic walk leaves it. The arithmetic is
    done in whole steps (``run_scaled``) when the run's prices and ledger allow it, else in Decimal
    (``run_decimal``); both give the same events, value and representation.
    """
    scaled = run_scaled(model, bars, sig, fills, decisions, trips, rejections, checkpoint)
    if scaled is not None:
        return scaled
    return run_decimal(model, bars, sig, fills, decisions, trips, rejections, checkpoint)


def run_decimal(
    model: ExecutionModel,
    bars: Bars,
    sig: Signals,
    fills: list[Fill],
    decisions: list[Decision],
    trips: list[RoundTrip],
    rejections: list[Rejection],
    checkpoint: Callable[[float], None],
) -> Segments:
    """``run_market_only`` with the model's Decimal expressions, one for one (any run ``applies`` to)."""
    cfg = model.config
    n, _ent, _ext, e1, x1, ent_l, ext_l, ent_ts, ent_close, ent_fts, ext_ts, ext_close, ext_fts = _candidates(bars, sig)
    ent_fopen, ext_fopen = bars.open[e1].tolist(), bars.open[x1].tolist()  # the fill bars' opens
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



# -- the same stepping in whole numbers of each quantity's step ------------------------------------
#
# Every Decimal of the fast path is a whole number of some power of ten: a price of 10**ep (the
# tick), a quantity of 10**eq (the lot), money of 10**ec (the cash step), a bar price of 10**-P (its
# shortest repr, see _scaled_prices). So the same expressions can be evaluated on Python ints: a
# product is the product of the whole numbers, and ``quantize(step, ROUND_UP / ROUND_DOWN)`` of a
# positive value is a ceiling / floor division by a power of ten. That is exact, and CTX's results
# are exact too as long as nothing reaches its 60 digits: _OutOfRange guards the sizes, and a run that
# would exceed them is done in Decimal instead. The Decimals the events carry are then made from the
# whole numbers with the exponent the Decimal expression would have given (for a sum, the smaller of
# its operands' exponents; for a quantize, the step's), so value and representation are the same.

_EXACT_BELOW = 2.0**50  # |price| x 10**P below this: one decimal of P places per double (_scaled_prices)
_MAX_PLACES = 12  # bar prices with more decimals than this take the Decimal path
_COEF_MAX = 10**12  # config coefficients (fee and slippage factors, fraction) larger than this: Decimal path
_CASH_MAX = 10**40  # cash (in its smallest unit) at an entry: beyond it, the Decimal path
_PRODUCT_MAX = 10**59  # any product below 10**60 is exact in CTX; kept below with a digit to spare
_QUOTIENT_MAX = 10**57  # a quotient's numerator below this cannot be rounded across a lot by CTX's 60 digits
_STEP_EXP = 20  # steps from 1E-20 to 1E+20 (beyond: the Decimal path)


class _OutOfRange(Exception):
    """A value of the run would come near CTX's 60 digits: the run is redone in Decimal."""


def _coef(d: Decimal) -> tuple[int, int]:
    """(N, e) with ``d == N * 10**e`` exactly (a finite ``d``)."""
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)  # finite: the config's validation and applies() see to that
    n = int("".join(map(str, digits)))
    return (-n if sign else n), exp


def _whole(d: Decimal, exponent: int) -> int:
    """``d`` as a whole number of 10**exponent (``d`` is a multiple of it, as the model's quantizers make)."""
    n, e = _coef(d)
    assert e >= exponent
    return n * 10 ** (e - exponent)


def _shift(frm: int, to: int) -> tuple[int, int]:
    """(multiplier, divisor) taking a whole number of 10**frm to whole numbers of 10**to: multiply
    by the first, then divide (rounding up or down) by the second."""
    return (10 ** (frm - to), 1) if frm >= to else (1, 10 ** (to - frm))


def _scaled_prices(arrays: list[np.ndarray]) -> tuple[int, list[list[int]]] | None:
    """The fewest places P for which every price is the whole number ``s`` of 10**-P its shortest repr
    means, and those numbers; None when a price is not positive and finite, or needs more than 12 places.

    Exact: ``s / 10**P == f`` (two exact doubles, a correctly rounded division) says the decimal
    ``s * 10**-P`` rounds to the double ``f``. With ``|f| * 10**P < 2**50`` the doubles near ``f`` are
    less than ``10**-P / 2`` apart, so no other decimal of at most P places rounds to ``f``; and
    ``repr(f)``, the shortest decimal that rounds to ``f``, has at most P places (had it more, it would
    be longer than ``s * 10**-P``), so it is that decimal.
    """
    values = np.concatenate(arrays)
    if not (np.isfinite(values).all() and (values > 0).all()):
        return None
    for places in range(_MAX_PLACES + 1):
        scale = 10.0**places
        whole = np.round(values * scale)
        if not (whole < _EXACT_BELOW).all():
            return None
        if (whole / scale == values).all():
            return places, [np.round(a * scale).astype(np.int64).tolist() for a in arrays]
    return None


class Exponents(NamedTuple):
    """The exponents of a whole-step run's Decimals (value = whole number x 10**exponent)."""

    price: int  # the tick's
    qty: int  # the lot's
    cash: int  # the cash step's: notionals, fees
    position: int  # the model's position (ZERO + lots: the smaller of the two)
    fee: int | None  # None: no fee, the fee model's ZERO
    cost: int  # notional + fee, notional - fee, gross - fees: the smaller of the cash step's and the fee's


@dataclass(slots=True, eq=False)
class ScaledRun:
    """A whole-step run's events as columns of whole numbers, in the order the loop met them.

    ``events()`` makes them into the model's ``Fill`` / ``Decision`` / ``RoundTrip`` / ``Rejection``
    tuples and Decimals (what ``run_decimal`` appends, value and representation); ``trip_columns()``
    gives the statistics what they read of the round trips without making any of them.
    """

    exponents: Exponents
    entry_id: list[int] = field(default_factory=list)  # entry decisions: order id, bar time, lots, close
    entry_ts: list[int] = field(default_factory=list)
    entry_qty: list[int] = field(default_factory=list)
    entry_close: list[float] = field(default_factory=list)
    exit_id: list[int] = field(default_factory=list)  # exit decisions: order id, bar time, position, close
    exit_ts: list[int] = field(default_factory=list)
    exit_qty: list[int] = field(default_factory=list)
    exit_close: list[float] = field(default_factory=list)
    buy_id: list[int] = field(default_factory=list)  # buy fills: order id, time, lots, ticks, notional, fee
    buy_ts: list[int] = field(default_factory=list)
    buy_qty: list[int] = field(default_factory=list)
    buy_price: list[int] = field(default_factory=list)
    buy_notional: list[int] = field(default_factory=list)
    buy_fee: list[int] = field(default_factory=list)
    sell_ts: list[int] = field(default_factory=list)  # sell fills (the k-th closes the k-th buy; ids: exit_id)
    sell_price: list[int] = field(default_factory=list)
    sell_notional: list[int] = field(default_factory=list)
    sell_fee: list[int] = field(default_factory=list)
    reject_id: list[int] = field(default_factory=list)
    reject_ts: list[int] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int]:
        """(fills, decisions, rejections)."""
        return len(self.buy_id) + len(self.sell_ts), len(self.entry_id) + len(self.exit_id), len(self.reject_id)

    def trip_columns(self) -> TripColumns:
        x = self.exponents
        n = len(self.sell_ts)
        # Each trip's net PnL (gross - buy fee - sell fee) in 10**cost units.
        net = map(sub_int, map(sub_int, map(sub_int, self.sell_notional, self.buy_notional), self.buy_fee),
                  self.sell_fee)
        scale = 10 ** (x.cash - x.cost)
        units = list(net) if scale == 1 else [v * scale for v in net]
        return TripColumns(pnl=_floats(units, x.cost), entry_price=_floats(self.buy_price[:n], x.price),
                           qty=_floats(self.buy_qty[:n], x.qty), exit_ts=np.asarray(self.sell_ts, dtype=np.int64),
                           reasons=[OrderReason.EXIT] * n, net_units=units, net_exponent=x.cost)

    def events(self) -> tuple[list[Fill], list[Decision], list[RoundTrip], list[Rejection]]:
        ep, eq, ec, e_pos = self.exponents.price, self.exponents.qty, self.exponents.cash, self.exponents.position
        charging = self.exponents.fee is not None
        new = tuple.__new__
        buy, sell, market, taker = Side.BUY, Side.SELL, OrderType.MARKET, Liquidity.TAKER
        r_entry, r_exit = OrderReason.ENTRY, OrderReason.EXIT
        mul = CTX.multiply

        def decs(values: list[int], exponent: int) -> list[Decimal]:
            # Decimal(v) x 1E<exponent>: coefficient v, that exponent (exact in CTX, like a quantize's result).
            return list(map(mul, map(Decimal, values), repeat(CTX.scaleb(ONE, exponent))))

        def fees(values: list[int]) -> list[Decimal]:
            return decs(values, ec) if charging else [ZERO] * len(values)

        entry_qty = decs(self.entry_qty, eq)
        entries = list(map(new, repeat(Decision), zip(
            self.entry_ts, repeat(buy), entry_qty, repeat(market), map(Decimal, map(repr, self.entry_close)),
            repeat(r_entry), self.entry_id, repeat(None), repeat(None))))
        position = decs(self.exit_qty, e_pos)
        exits = list(map(new, repeat(Decision), zip(
            self.exit_ts, repeat(sell), position, repeat(market), map(Decimal, map(repr, self.exit_close)),
            repeat(r_exit), self.exit_id, repeat(None), repeat(None))))
        decisions = sorted(entries + exits, key=_ORDER_ID)
        nb, n = len(self.buy_id), len(self.sell_ts)
        # A buy fills its decision's quantity (the model's same Decimal), unless a gap up clipped it.
        same = self.entry_id[:nb] == self.buy_id and self.entry_qty[:nb] == self.buy_qty
        buy_qty = entry_qty[:nb] if same else decs(self.buy_qty, eq)
        buy_price, sell_price = decs(self.buy_price, ep), decs(self.sell_price, ep)
        buy_notional, sell_notional = decs(self.buy_notional, ec), decs(self.sell_notional, ec)
        buy_fee, sell_fee = fees(self.buy_fee), fees(self.sell_fee)
        buys = list(map(new, repeat(Fill), zip(
            self.buy_id, self.buy_ts, repeat(buy), repeat(market), repeat(r_entry), buy_qty, buy_price, buy_notional,
            buy_fee, repeat(taker))))
        sells = list(map(new, repeat(Fill), zip(
            self.exit_id, self.sell_ts, repeat(sell), repeat(market), repeat(r_exit), position, sell_price,
            sell_notional, sell_fee, repeat(taker))))
        fills: list[Fill] = [buys[0]] * (nb + n) if buys else []
        fills[0::2], fills[1::2] = buys, sells  # each sell closes the buy before it
        # ExecutionModel._round_trip of one buy and one sell: the same Decimal expressions.
        gross = list(map(CTX.subtract, sell_notional, buy_notional))
        trip_fees = list(map(CTX.add, buy_fee, sell_fee))
        trips = list(map(new, repeat(RoundTrip), zip(
            self.buy_ts, self.sell_ts, buy_price, sell_price, buy_qty, gross, trip_fees,
            map(CTX.subtract, gross, trip_fees), map(sub_int, self.sell_ts, self.buy_ts), repeat(r_exit))))
        rejections = list(map(new, repeat(Rejection), zip(self.reject_id, self.reject_ts, repeat("insufficient_cash"))))
        return fills, decisions, trips, rejections


_ORDER_ID = operator.attrgetter("order_id")
sub_int = operator.sub


def _floats(values: list[int], exponent: int) -> np.ndarray:
    """``float(Decimal)`` of each ``value * 10**exponent``: an int / int division is correctly rounded too."""
    if exponent >= 0:
        return np.asarray([float(v * 10**exponent) for v in values], dtype=np.float64)
    return np.asarray(list(map(operator.truediv, values, repeat(10**-exponent))), dtype=np.float64)


def run_scaled(
    model: ExecutionModel,
    bars: Bars,
    sig: Signals,
    fills: list[Fill],
    decisions: list[Decision],
    trips: list[RoundTrip],
    rejections: list[Rejection],
    checkpoint: Callable[[float], None],
) -> Segments | None:
    """``run_market_only`` in whole numbers of the steps, its events appended to the lists given; None,
    with nothing written, when the run's prices or sizes need the Decimal path (``run_decimal``)."""
    done = run_columns(model, bars, sig, checkpoint)
    if done is None:
        return None
    segments, run = done
    made_fills, made_decisions, made_trips, made_rejections = run.events()
    fills.extend(made_fills)
    decisions.extend(made_decisions)
    trips.extend(made_trips)
    rejections.extend(made_rejections)
    return segments


def run_columns(model: ExecutionModel, bars: Bars, sig: Signals,
                checkpoint: Callable[[float], None]) -> tuple[Segments, ScaledRun] | None:
    """The run in whole numbers of the steps, its events as columns (``ScaledRun``); None, with the
    model untouched, when its prices or sizes need the Decimal path (``run_decimal``)."""
    cash = model._cash
    try:
        return _scaled(model, bars, sig, checkpoint)
    except _OutOfRange:
        model._cash = cash  # the only field the loop sets before its end (for the model's _affordable)
        return None


def _scaled(  # noqa: C901 -- one loop, kept flat like run_decimal's so the two read side by side
    model: ExecutionModel,
    bars: Bars,
    sig: Signals,
    checkpoint: Callable[[float], None],
) -> tuple[Segments, ScaledRun]:
    cfg = model.config
    slip, fee_model = model.slippage_model, model.fee_model
    assert isinstance(slip, BpsSlippageModel) and isinstance(fee_model, BpsFeeModel)  # applies() checked their types
    ep, eq, ec = (_coef(s)[1] for s in (cfg.price_step, cfg.qty_step, cfg.cash_step))
    sf_n, sf_e = _coef(model._slip_factor)  # sizing: the config's slippage
    ff_n, ff_e = _coef(model._fee_factor)
    fr_n, fr_e = _coef(cfg.position_fraction)
    res_n, res_e = _coef(model._reserve)
    slipping = slip.bps != ZERO
    sb_n, sb_e = _coef(slip._buy) if slipping else (1, 0)
    ss_n, ss_e = _coef(slip._sell) if slipping else (1, 0)
    charging = fee_model._taker_rate != ZERO
    tr_n, tr_e = _coef(fee_model._taker_rate) if charging else (0, 0)
    if max(sf_n, ff_n, fr_n, res_n, sb_n, ss_n, tr_n) >= _COEF_MAX:
        raise _OutOfRange
    # The ceiling/floor divisions below round a positive value the way ROUND_UP / ROUND_DOWN do (away
    # from / toward zero): a rebate (negative fee rate) or a factor <= 0 takes the Decimal path; so do
    # steps so fine or coarse that the model's own quantize could exceed its 60 digits.
    if tr_n < 0 or min(sf_n, ff_n, fr_n, sb_n, ss_n) <= 0 or not all(-_STEP_EXP <= x <= _STEP_EXP for x in (ep, eq, ec)):
        raise _OutOfRange
    n, ent, ext, e1, x1, ent_l, ext_l, ent_ts, ent_close, ent_fts, ext_ts, ext_close, ext_fts = _candidates(bars, sig)
    scaled = _scaled_prices([bars.close[ent], bars.open[e1], bars.open[x1]])
    if scaled is None:
        raise _OutOfRange
    places, (ent_close_n, ent_fopen_n, ext_fopen_n) = scaled
    n_ent, n_ext = len(ent_l), len(ext_l)

    # Exponents of the ledger's Decimals once they have moved (the smaller operand exponent of each sum).
    e_fee = ec if charging else 0  # a fee is quantized to the cash step, or the model's ZERO
    e_cost = min(ec, e_fee)  # notional + fee, notional - fee, gross - fees
    cash0, fees0, pos0 = model._cash, model._fees, model._position
    cash_n0, cash_e0 = _coef(cash0)
    fees_n0, fees_e0 = _coef(fees0)
    e_cash = min(cash_e0, e_cost)
    e_fees = min(fees_e0, e_fee)
    e_pos = min(_coef(pos0)[1], eq)
    # Whole-number maps (multiplier, divisor), each from where an expression's value lands to its step.
    sz_m, sz_d = _shift(-places + sf_e, ep)  # close x slip factor -> tick, up
    sz_m *= sf_n
    e_budget = min(fr_e + e_cash, res_e)
    budget_m = fr_n * 10 ** (fr_e + e_cash - e_budget)
    reserve = res_n * 10 ** (res_e - e_budget)
    q_m, q_d = _shift(e_budget - (ep + ff_e), eq)  # budget / unit -> lot, down
    pb_m, pb_d = _shift(-places + sb_e, ep)  # open x buy slippage -> tick, up
    pb_m *= sb_n
    ps_m, ps_d = _shift(-places + ss_e, ep)  # open x sell slippage -> tick, down
    ps_m *= ss_n
    nb_m, nb_d = _shift(eq + ep, ec)  # qty x price -> cash step (up for a buy)
    ns_m, ns_d = _shift(e_pos + ep, ec)  # position x price -> cash step (down for a sell)
    fe_m, fe_d = _shift(ec + tr_e, ec)  # notional x rate -> cash step, up
    fe_m *= tr_n
    to_cash = 10 ** (ec - e_cash)  # money at the cash step -> the cash's exponent
    to_fees = 10 ** (ec - e_fees) if charging else 0
    to_pos = 10 ** (eq - e_pos)
    cash_num, cash_den = 10 ** max(e_cash, 0), 10 ** max(-e_cash, 0)  # float(cash): correctly rounded int / int
    pos_num, pos_den = 10 ** max(e_pos, 0), 10 ** max(-e_pos, 0)

    run = ScaledRun(Exponents(ep, eq, ec, e_pos, e_fee if charging else None, e_cost))
    entry_id, entry_ts, entry_qty, entry_close = run.entry_id.append, run.entry_ts.append, run.entry_qty.append, \
        run.entry_close.append
    exit_id, exit_ts, exit_qty, exit_close = run.exit_id.append, run.exit_ts.append, run.exit_qty.append, \
        run.exit_close.append
    buy_id, buy_ts, buy_qty, buy_price = run.buy_id.append, run.buy_ts.append, run.buy_qty.append, run.buy_price.append
    buy_notional, buy_fee = run.buy_notional.append, run.buy_fee.append
    sell_ts, sell_price, sell_notional, sell_fee = run.sell_ts.append, run.sell_price.append, \
        run.sell_notional.append, run.sell_fee.append

    cash = cash_n0 * 10 ** (cash_e0 - e_cash)
    fees = fees_n0 * 10 ** (fees_e0 - e_fees)
    position = 0  # applies() saw a flat model
    moved = False
    next_id = model._next_id
    holding = False
    seg_start = [0]
    seg_cash = [float(cash0)]
    seg_qty = [float(pos0)]
    decide_from = 0
    k = j = 0
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
        if cash >= _CASH_MAX:
            raise _OutOfRange
        # ExecutionModel.entry_qty: (fraction x cash - reserve) / (up_to_tick(close x slip) x fee factor)
        budget = cash * budget_m - reserve
        if budget <= 0:
            decide_from = d + 1
            continue
        numerator = budget * q_m
        if numerator >= _QUOTIENT_MAX:
            raise _OutOfRange
        qty = numerator // (-(-(ent_close_n[k] * sz_m) // sz_d) * ff_n * q_d)
        if qty <= 0:
            decide_from = d + 1
            continue
        order_id = next_id
        next_id += 1
        entry_id(order_id)
        entry_ts(ent_ts[k])
        entry_qty(qty)
        entry_close(ent_close[k])
        f = d + 1
        if f >= n:
            break  # the order is still working when the bars end
        # try_fill, market buy at the open of f
        t = ent_fts[k]
        price = -(-(ent_fopen_n[k] * pb_m) // pb_d)
        product = qty * price * nb_m
        if product >= _PRODUCT_MAX:
            raise _OutOfRange
        notional = -(-product // nb_d)
        fee = 0
        if charging:  # BpsFeeModel.fee: notional x rate (exact in CTX below 60 digits), quantized up
            product = notional * fe_m
            if product >= _PRODUCT_MAX:
                raise _OutOfRange
            fee = -(-product // fe_d)
        if (notional + fee) * to_cash > cash:
            model._cash = _dec(cash, e_cash)
            sized = model._affordable(_dec(qty, eq), _dec(price, ep), Liquidity.TAKER)  # gap up: clip (or reject)
            if sized is None:
                run.reject_id.append(order_id)
                run.reject_ts.append(t)
                decide_from = f
                continue
            qty_d, notional_d, fee_d = sized
            qty, notional, fee = _whole(qty_d, eq), _whole(notional_d, ec), _whole(fee_d, ec) if charging else 0
        buy_id(order_id)
        buy_ts(t)
        buy_qty(qty)
        buy_price(price)
        buy_notional(notional)
        buy_fee(fee)
        # _apply (buy)
        moved = holding = True
        fees += fee * to_fees
        cash -= (notional + fee) * to_cash
        position = qty * to_pos
        seg_start.append(f)
        seg_cash.append(cash * cash_num / cash_den)
        seg_qty.append(position * pos_num / pos_den)
        # -- long: the next exit (decide) -------------------------------------------------------
        while j < n_ext and ext_l[j] < f:
            j += 1
        if j >= n_ext:
            break
        e = ext_l[j]
        order_id = next_id
        next_id += 1
        exit_id(order_id)
        exit_ts(ext_ts[j])
        exit_qty(position)
        exit_close(ext_close[j])
        f = e + 1
        if f >= n:
            break
        # try_fill, market sell of the whole position at the open of f
        t = ext_fts[j]
        price = ext_fopen_n[j] * ps_m // ps_d
        product = position * price * ns_m
        if product >= _PRODUCT_MAX:
            raise _OutOfRange
        notional = product // ns_d
        fee = 0
        if charging:
            product = notional * fe_m
            if product >= _PRODUCT_MAX:
                raise _OutOfRange
            fee = -(-product // fe_d)
        sell_ts(t)
        sell_price(price)
        sell_notional(notional)
        sell_fee(fee)
        # _apply (sell); the round trip is the last buy and this sell (ScaledRun.events)
        fees += fee * to_fees
        cash += (notional - fee) * to_cash
        holding = False
        position = 0
        seg_start.append(f)
        seg_cash.append(cash * cash_num / cash_den)
        seg_qty.append(0.0)
        decide_from = f
    if moved:
        model._cash, model._fees, model._position = _dec(cash, e_cash), _dec(fees, e_fees), _dec(position, e_pos)
    else:
        model._cash = cash0  # _affordable may have been handed an equal Decimal
    model._next_id = next_id
    model._trip = [_open_buy(run, eq, ep, ec, charging)] if holding else []
    return (seg_start, seg_cash, seg_qty), run


def _dec(value: int, exponent: int) -> Decimal:
    return CTX.scaleb(Decimal(value), exponent)


def _open_buy(run: ScaledRun, eq: int, ep: int, ec: int, charging: bool) -> Fill:
    """The buy fill of the position the run ends with (the model's open trip)."""
    return Fill(run.buy_id[-1], run.buy_ts[-1], Side.BUY, OrderType.MARKET, OrderReason.ENTRY,
                _dec(run.buy_qty[-1], eq), _dec(run.buy_price[-1], ep), _dec(run.buy_notional[-1], ec),
                _dec(run.buy_fee[-1], ec) if charging else ZERO, Liquidity.TAKER)
