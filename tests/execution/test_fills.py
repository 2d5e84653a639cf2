"""Fill rules on hand-computed examples (fees, slippage and rounding included)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import pytest

from gordon_manager.execution import (
    ExecutionModel,
    FeeModel,
    Fill,
    Liquidity,
    OrderReason,
    OrderType,
    Rejection,
    Side,
    quantize,
)

from .helpers import CFG, D, bar, model

BUY, SELL = Side.BUY, Side.SELL
MKT, LMT, STP = OrderType.MARKET, OrderType.LIMIT, OrderType.STOP


def only_fill(events: list) -> Fill:
    fills = [e for e in events if isinstance(e, Fill)]
    assert len(fills) == 1, events
    return fills[0]


def test_market_buy_fills_next_open_plus_slippage_with_taker_fee() -> None:
    m = model()
    m.submit(side=BUY, order_type=MKT, qty=D(2), ts=0)
    assert m.process_bar(bar(0, 100, 101, 99, 100)) == []  # never on the decision bar
    f = only_fill(m.process_bar(bar(60, 100, 101, 99, 100.5)))
    # 100 x 1.001 = 100.10; notional 200.20; fee 0.2002 rounded up to 0.21
    assert (f.price, f.notional, f.fee, f.liquidity) == (D("100.10"), D("200.20"), D("0.21"), Liquidity.TAKER)
    assert m.cash == D("9799.59") and m.position == D(2) and m.fees_paid == D("0.21")
    assert m.open_orders == ()


def test_market_sell_slips_down_and_round_trip_adds_up() -> None:
    m = model()
    m.submit(side=BUY, order_type=MKT, qty=D(2), ts=0)
    m.process_bar(bar(60, 100, 101, 99, 100))
    m.submit(side=SELL, order_type=MKT, qty=D(2), ts=60, reason=OrderReason.EXIT)
    events = m.process_bar(bar(120, 110, 111, 109, 110))
    f = only_fill(events)
    # 110 x 0.999 = 109.89; notional 219.78; fee 0.21978 rounded up to 0.22
    assert (f.price, f.notional, f.fee) == (D("109.89"), D("219.78"), D("0.22"))
    assert m.cash == D("10019.15") and m.position == 0
    trip = events[-1]
    assert trip.entry_ts == 60 and trip.exit_ts == 120 and trip.duration_ms == 60
    assert (trip.entry_price, trip.exit_price, trip.qty) == (D("100.10"), D("109.89"), D(2))
    assert (trip.gross_pnl, trip.fees, trip.net_pnl) == (D("19.58"), D("0.43"), D("19.15"))
    assert trip.net_pnl == m.cash - D(10000)
    assert trip.exit_reason is OrderReason.EXIT


def test_fill_price_rounds_against_the_trader() -> None:
    m = model(slippage_bps=D(0))
    buy = m.submit(side=BUY, order_type=MKT, qty=D(1), ts=0)
    assert m.try_fill(buy, bar(1, 100.003, 101, 99, 100)).price == D("100.01")
    m.process_bar(bar(1, 100.003, 101, 99, 100))
    sell = m.submit(side=SELL, order_type=MKT, qty=D(1), ts=1)
    assert m.try_fill(sell, bar(2, 100.009, 101, 99, 100)).price == D("100.00")


@pytest.mark.parametrize(
    ("o", "lo", "expected"),
    [
        (100.0, 99.50, None),  # touch: no fill
        (100.0, 99.49, D("99.50")),  # through: the limit
        (99.0, 98.0, D("99.00")),  # opened below the limit: the better open
    ],
)
def test_buy_limit_needs_trade_through(o: float, lo: float, expected: Decimal | None) -> None:
    m = model()
    order = m.submit(side=BUY, order_type=LMT, qty=D(2), ts=0, price=D("99.50"))
    out = m.try_fill(order, bar(1, o, max(o, 100.5), lo, max(lo, 99.6)))
    if expected is None:
        assert out is None
    else:
        assert out.price == expected and out.liquidity is Liquidity.MAKER
        # maker 2 bps, no slippage: 2 x 99.50 = 199.00, fee 0.0398 -> 0.04
        if expected == D("99.50"):
            assert (out.notional, out.fee) == (D("199.00"), D("0.04"))


@pytest.mark.parametrize(
    ("o", "hi", "expected"),
    [(104.0, 105.00, None), (104.0, 105.01, D("105.00")), (106.0, 106.5, D("106.00"))],
)
def test_sell_limit_needs_trade_through(o: float, hi: float, expected: Decimal | None) -> None:
    m = model()
    m.submit(side=BUY, order_type=MKT, qty=D(1), ts=0)
    m.process_bar(bar(1, 100, 100, 100, 100))
    order = m.submit(side=SELL, order_type=LMT, qty=D(1), ts=1, price=D(105))
    out = m.try_fill(order, bar(2, o, hi, min(o, 103), o))
    assert (out.price if out else None) == expected


@pytest.mark.parametrize(
    ("o", "hi", "expected"),
    [
        (100.0, 100.99, None),
        (100.0, 101.00, D("101.11")),  # touch triggers: 101 x 1.001 = 101.101 -> up 101.11
        (102.0, 103.00, D("102.11")),  # gap above the stop: the open, 102.102 -> 102.11
    ],
)
def test_buy_stop_triggers_on_touch_at_worse_price(o: float, hi: float, expected: Decimal | None) -> None:
    m = model()
    order = m.submit(side=BUY, order_type=STP, qty=D(1), ts=0, price=D(101))
    out = m.try_fill(order, bar(1, o, hi, min(o, 99), o))
    assert (out.price if out else None) == expected
    if out:
        assert out.liquidity is Liquidity.TAKER


@pytest.mark.parametrize(
    ("o", "lo", "expected"),
    [
        (96.0, 95.01, None),
        (96.0, 95.00, D("94.90")),  # 95 x 0.999 = 94.905 -> down 94.90
        (94.0, 93.00, D("93.90")),  # gap below: 94 x 0.999 = 93.906 -> 93.90
    ],
)
def test_sell_stop_triggers_on_touch_at_worse_price(o: float, lo: float, expected: Decimal | None) -> None:
    m = model()
    m.submit(side=BUY, order_type=MKT, qty=D(1), ts=0)
    m.process_bar(bar(1, 100, 100, 100, 100))
    order = m.submit(side=SELL, order_type=STP, qty=D(1), ts=1, price=D(95))
    out = m.try_fill(order, bar(2, o, max(o, 97), lo, o))
    assert (out.price if out else None) == expected


def test_order_prices_are_put_on_the_tick_conservatively() -> None:
    m = model()
    assert m.submit(side=BUY, order_type=LMT, qty=D(1), ts=0, price=D("99.555")).price == D("99.55")
    assert m.submit(side=SELL, order_type=LMT, qty=D(1), ts=0, price=D("105.001")).price == D("105.01")
    assert m.submit(side=BUY, order_type=STP, qty=D(1), ts=0, price=D("101.001")).price == D("101.01")
    assert m.submit(side=SELL, order_type=STP, qty=D(1), ts=0, price=D("94.999")).price == D("94.99")
    o = m.submit(side=BUY, order_type=MKT, qty=D(1), ts=0, stop_loss=D("94.999"), take_profit=D("105.001"))
    assert (o.stop_loss, o.take_profit) == (D("94.99"), D("105.01"))
    assert [x.id for x in m.open_orders] == [1, 2, 3, 4, 5]
    assert m.cancel(3) and not m.cancel(3)


def test_order_not_eligible_before_active_from() -> None:
    m = model()
    order = m.submit(side=BUY, order_type=LMT, qty=D(1), ts=10, price=D(99))
    assert m.try_fill(order, bar(10, 98, 98, 97, 98)) is None
    assert m.try_fill(order, bar(11, 98, 98, 97, 98)).price == D("98.00")


def test_rejections_and_clipping() -> None:
    m = model()
    sell = m.submit(side=SELL, order_type=MKT, qty=D(1), ts=0)
    assert m.process_bar(bar(1, 100, 100, 100, 100)) == [Rejection(sell.id, 1, "no_position")]
    m.submit(side=BUY, order_type=MKT, qty=D(1), ts=1)
    m.process_bar(bar(2, 100, 100, 100, 100))
    short = m.submit(side=SELL, order_type=MKT, qty=D(2), ts=2)
    assert m.process_bar(bar(3, 100, 100, 100, 100)) == [Rejection(short.id, 3, "would_short")]
    m.submit(side=SELL, order_type=MKT, qty=D(2), ts=3, reduce_only=True)
    assert only_fill(m.process_bar(bar(4, 100, 100, 100, 100))).qty == D(1)
    assert m.position == 0


def test_buy_clipped_to_cash_after_a_gap() -> None:
    m = model(initial_cash=D(1000))
    m.submit(side=BUY, order_type=MKT, qty=D(10), ts=0)
    f = only_fill(m.process_bar(bar(1, 100, 100, 100, 100)))
    # 10 lots would cost 1001.00 + 1.01 fee. Unit cost 100.10 + 0.11 -> 1000 / 100.21 = 9.979;
    # 9.979 x 100.10 = 998.8979 -> 998.90, fee 0.99890 -> 1.00, total 999.90
    assert (f.qty, f.notional, f.fee) == (D("9.979"), D("998.90"), D("1.00"))
    assert m.cash == D("0.10")


def test_buy_below_one_lot_is_rejected() -> None:
    m = model(initial_cash=D(50), qty_step=D(1))
    order = m.submit(side=BUY, order_type=MKT, qty=D(3), ts=0)
    assert m.process_bar(bar(1, 100, 100, 100, 100)) == [Rejection(order.id, 1, "insufficient_cash")]
    assert m.cash == D(50) and m.open_orders == ()


@dataclass(frozen=True, slots=True)
class _StepFee(FeeModel):
    """0 below a notional of 150, 50 above: the per-unit estimate under-budgets it."""

    def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
        return D(0) if notional < 150 else D(50)


def test_clipping_searches_when_the_fee_estimate_is_short() -> None:
    m = ExecutionModel(CFG.model_copy(update={"initial_cash": D(250), "qty_step": D(1)}), fee_model=_StepFee())
    m.submit(side=BUY, order_type=MKT, qty=D(5), ts=0)
    f = only_fill(m.process_bar(bar(1, 100, 100, 100, 100)))
    # estimate 250 / 100.10 -> 2 lots, but 200.20 + 50 > 250, so 1 lot at 100.10 with no fee
    assert (f.qty, f.notional, f.fee) == (D(1), D("100.10"), D(0))
    # With 1e-8 lots the search is binary, not lot by lot: the largest affordable quantity pays the
    # 50 fee on a notional of at most 200.00, i.e. floor(200 / 100.10) = 1.99800199 (199.9999991..).
    fine = ExecutionModel(CFG.model_copy(update={"initial_cash": D(250), "qty_step": D("1e-8")}),
                          fee_model=_StepFee())
    fine.submit(side=BUY, order_type=MKT, qty=D(5), ts=0)
    f = only_fill(fine.process_bar(bar(1, 100, 100, 100, 100)))
    assert (f.qty, f.notional, f.fee) == (D("1.99800199"), D("200.00"), D(50))


def test_partial_entries_and_exits_form_one_round_trip() -> None:
    m = model(slippage_bps=D(0), taker_fee_bps=D(0))
    m.submit(side=BUY, order_type=MKT, qty=D(1), ts=0)
    m.process_bar(bar(1, 100, 100, 100, 100))
    m.submit(side=BUY, order_type=MKT, qty=D(3), ts=1)
    m.process_bar(bar(2, 104, 104, 104, 104))
    m.submit(side=SELL, order_type=MKT, qty=D(2), ts=2)
    assert len(m.process_bar(bar(3, 110, 110, 110, 110))) == 1
    m.submit(side=SELL, order_type=MKT, qty=D(2), ts=3)
    trip = m.process_bar(bar(4, 111, 111, 111, 111))[-1]
    assert trip.entry_ts == 1 and trip.exit_ts == 4 and trip.qty == D(4)
    assert trip.entry_price == D("103.00")  # (100 + 3 x 104) / 4
    assert trip.exit_price == D("110.50")
    assert trip.gross_pnl == D(442 - 412) and trip.fees == 0 and trip.net_pnl == D(30)


def test_equity_is_derived_from_the_ledger() -> None:
    m = model()
    assert m.equity(123.0) == 10000.0
    m.submit(side=BUY, order_type=MKT, qty=D(2), ts=0)
    m.process_bar(bar(1, 100, 100, 100, 100))
    assert m.equity(101.5) == float(D("9799.59")) + 2.0 * 101.5


def test_entry_qty_budgets_slippage_and_fee() -> None:
    m = model()
    # (10000 - 0.02) / (100.10 x 1.001) = 99.80009.. -> 99.800; half: 49.89995.. -> 49.899
    assert m.entry_qty(D(100)) == D("99.800")
    assert model(position_fraction=D("0.5")).entry_qty(D(100)) == D("49.899")
    # 100.003 x 1.001 = 100.103003 -> up to the tick 100.11
    assert m.entry_qty(D("100.003")) == quantize((D(10000) - D("0.02")) / (D("100.11") * D("1.001")),
                                                 D("0.001"), ROUND_DOWN)
    assert model(initial_cash=D("0.01")).entry_qty(D(100)) == 0
