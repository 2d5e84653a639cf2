"""Config, orders, money helpers, bars, pluggable models and the decision rule."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import numpy as np
import pydantic
import pytest

from gordon_manager.execution import (
    Bar,
    Bars,
    BpsSlippageModel,
    ExecutionConfig,
    ExecutionModel,
    FeeModel,
    FillModel,
    Liquidity,
    Order,
    OrderReason,
    OrderType,
    Side,
    SlippageModel,
    dec,
    decide,
    quantize,
    validate_bar,
)
from gordon_manager.execution.money import quantizer

from .helpers import CFG, D, bar, model


# -- config ------------------------------------------------------------------------------------
def test_config_is_frozen_validated_and_exact() -> None:
    cfg = ExecutionConfig(taker_fee_bps=0.1, initial_cash="2500.50")
    assert cfg.taker_fee_bps == D("0.1") and cfg.initial_cash == D("2500.50")
    with pytest.raises(pydantic.ValidationError):
        cfg.taker_fee_bps = D(1)  # type: ignore[misc]
    for bad in ({"initial_cash": 0}, {"slippage_bps": -1}, {"position_fraction": D("1.5")},
                {"qty_step": 0}, {"nope": 1}, {"maker_fee_bps": "nan"}):
        with pytest.raises(pydantic.ValidationError):
            ExecutionConfig(**bad)


# -- orders ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"qty": D(0)},
        {"type": OrderType.MARKET, "price": D(1)},
        {"type": OrderType.LIMIT, "price": None},
        {"type": OrderType.STOP, "price": D(0)},
        {"side": Side.SELL, "stop_loss": D(90)},
        {"stop_loss": D(0)},
    ],
)
def test_malformed_orders_are_refused(kwargs: dict) -> None:
    base = {"id": 1, "side": Side.BUY, "type": OrderType.MARKET, "qty": D(1), "submitted_ts": 0,
            "active_from": 1}
    with pytest.raises(ValueError):
        Order(**{**base, **kwargs}).validate()
    with pytest.raises(ValueError):
        model().submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(0), ts=0)


def test_order_level_is_the_float_price() -> None:
    o = Order(1, Side.BUY, OrderType.LIMIT, D(1), 0, 1, D("99.5"))
    assert o.level == 99.5
    assert math.isnan(Order(1, Side.BUY, OrderType.MARKET, D(1), 0, 1).level)


# -- money ------------------------------------------------------------------------------------
def test_dec_uses_the_shortest_repr() -> None:
    assert dec(100.1) == D("100.1") and dec(0.1 + 0.2) == D("0.30000000000000004")
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError):
            dec(bad)


def test_quantize_powers_of_ten_and_other_steps() -> None:
    assert quantize(D("1.23456789"), D("0.0001"), ROUND_DOWN) == D("1.2345")
    assert quantize(D("1.23451"), D("0.0001"), ROUND_UP) == D("1.2346")
    assert quantize(D("100.3"), D("0.25"), ROUND_DOWN) == D("100.25")
    assert quantize(D("100.3"), D("0.25"), ROUND_UP) == D("100.50")
    assert quantize(D("100.375"), D("0.25"), ROUND_HALF_EVEN) == D("100.50")
    with pytest.raises(ValueError):
        quantizer(D(0))


def test_half_tick_market_keeps_prices_on_its_grid() -> None:
    m = ExecutionModel(CFG.model_copy(update={"price_step": D("0.5")}))
    o = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0)
    assert m.try_fill(o, bar(1, 100.2, 101, 99, 100)).price == D("100.5")  # 100.3002 -> up, once
    assert m.try_fill(o, bar(1, 100.6, 101, 99, 100)).price == D("101.0")  # 100.7006 -> up


# -- bars -------------------------------------------------------------------------------------
def test_validate_bar() -> None:
    validate_bar(bar(0, 1, 2, 0.5, 1.5))
    for bad in (bar(0, 1, 0.9, 0.5, 0.8), bar(0, 1, 2, 1.1, 1.5), bar(0, 1, 2, -1, 1),
                bar(0, math.nan, 2, 0.5, 1), Bar(0, 1, 2, 0.5, 1, -1)):
        with pytest.raises(ValueError):
            validate_bar(bad)


def test_bars_container() -> None:
    rows = [bar(0, 1, 2, 0.5, 1.5), bar(60_000, 1.5, 2, 1, 1.2), bar(120_000, 1.2, 1.3, 1.1, 1.25)]
    b = Bars.from_bars(rows)
    assert len(b) == 3 and list(b) == rows and b.bar(1) == rows[1] and b.interval_ms == 60_000
    assert b.ts.dtype == np.int64 and not b.close.flags.writeable
    s = b.slice(1, 3)
    assert list(s) == rows[1:] and s.slice(0, 1).interval_ms == 0
    assert len(Bars.from_bars([])) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"ts": [0, 0]},
        {"close": [1.0, 3.0]},
        {"low": [0.0, 1.0]},
        {"open": [1.0, math.inf]},
        {"volume": [1.0]},
        {"high": [[2.0, 2.0]]},
    ],
)
def test_bars_validation(change: dict) -> None:
    cols = {"ts": [0, 1], "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
            "close": [1.0, 1.0], "volume": [1.0, 1.0]}
    Bars(**cols)
    with pytest.raises(ValueError):
        Bars(**{**cols, **change})


# -- pluggable models -------------------------------------------------------------------------
def test_base_models_must_be_overridden() -> None:
    o = Order(1, Side.BUY, OrderType.MARKET, D(1), 0, 1)
    with pytest.raises(NotImplementedError):
        FeeModel().fee(D(1), Liquidity.TAKER)
    with pytest.raises(NotImplementedError):
        SlippageModel().adjust(D(1), Side.BUY)
    with pytest.raises(NotImplementedError):
        FillModel().triggered(o, 1.0, 1.0, 1.0)
    with pytest.raises(NotImplementedError):
        FillModel().base_price(o, D(1))


def test_slippage_model() -> None:
    m = BpsSlippageModel(bps=D(25))
    assert m.adjust(D(200), Side.BUY) == D("200.5") and m.adjust(D(200), Side.SELL) == D("199.5")
    assert BpsSlippageModel(bps=D(0)).adjust(D(200), Side.BUY) == D(200)


def test_zero_fee_and_custom_slippage_model() -> None:
    class Fixed(SlippageModel):
        def adjust(self, price: Decimal, side: Side) -> Decimal:
            return price + (D(1) if side is Side.BUY else D(-1))

    m = ExecutionModel(CFG.model_copy(update={"taker_fee_bps": D(0)}), slippage_model=Fixed())
    o = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0)
    f = m.try_fill(o, bar(1, 100, 100, 100, 100))
    assert (f.price, f.fee) == (D(101), D(0))


# -- next_trigger -----------------------------------------------------------------------------
def test_next_trigger_finds_the_first_eligible_trigger() -> None:
    m = model()
    ts = np.arange(6, dtype=np.int64) * 10
    o = np.array([100, 100, 100, 100, 100, 100.0])
    h = np.array([101, 101, 106, 101, 101, 101.0])
    lo = np.array([99, 99, 99, 94, 99, 99.0])
    arrays = {"ts": ts, "open_": o, "high": h, "low": lo}
    assert m.next_trigger(**arrays, start=0, stop=6) is None
    m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=0, price=D(105))
    m.submit(side=Side.SELL, order_type=OrderType.STOP, qty=D(1), ts=20, price=D(95))
    assert m.next_trigger(**arrays, start=0, stop=6) == 2
    assert m.next_trigger(**arrays, start=3, stop=6) == 3
    assert m.next_trigger(**arrays, start=4, stop=6) is None
    assert m.next_trigger(**arrays, start=0, stop=2) is None
    m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=30)
    assert m.next_trigger(**arrays, start=0, stop=6) == 2  # market is eligible only from ts 31
    assert m.next_trigger(**arrays, start=4, stop=6) == 4
    assert m.next_trigger(**arrays, start=6, stop=6) is None


# -- decision rule ----------------------------------------------------------------------------
def test_decide_enters_when_flat_and_exits_when_long() -> None:
    m = model()
    b0 = bar(0, 100, 100, 100, 100)
    assert decide(m, b0, entry=False, exit_=True) is None
    d = decide(m, b0, entry=True, exit_=False, stop_loss=95.0, take_profit=110.0)
    assert (d.side, d.order_type, d.qty, d.price, d.reason) == (
        Side.BUY, OrderType.MARKET, D("99.800"), D(100), OrderReason.ENTRY)
    assert (d.stop_loss, d.take_profit, d.order_id) == (D(95), D(110), 1)
    assert decide(m, b0, entry=True, exit_=False) is None  # an entry is already working
    m.process_bar(bar(1, 100, 100, 100, 100))
    b2 = bar(2, 101, 101, 101, 101)
    assert decide(m, b2, entry=True, exit_=False) is None
    d = decide(m, b2, entry=False, exit_=True)
    assert (d.side, d.qty, d.reason) == (Side.SELL, D("99.800"), OrderReason.EXIT)
    assert decide(m, b2, entry=False, exit_=True) is None  # an exit is already working


def test_decide_skips_an_entry_too_small_for_one_lot() -> None:
    m = model(initial_cash=D("0.01"))
    assert decide(m, bar(0, 100, 100, 100, 100), entry=True, exit_=False) is None
    assert m.open_orders == ()
