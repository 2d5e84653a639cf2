"""Brackets: stop before target, OCO, active from the fill bar, cancelled when flat."""

from __future__ import annotations

from gordon_manager.execution import Fill, OrderReason, OrderType, RoundTrip, Side

from .helpers import D, bar, model


def entered(**kw: object):
    m = model()
    m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0, reason=OrderReason.ENTRY,
             stop_loss=D(95), take_profit=D(105), **kw)
    return m


def test_bracket_is_attached_on_fill_and_stop_wins_a_bar_hitting_both() -> None:
    m = entered()
    events = m.process_bar(bar(1, 100, 100.5, 99.5, 100))
    assert [type(e) for e in events] == [Fill]
    assert [(o.type, o.reason, o.reduce_only, o.oco_group) for o in m.open_orders] == [
        (OrderType.STOP, OrderReason.STOP_LOSS, True, 1),
        (OrderType.LIMIT, OrderReason.TAKE_PROFIT, True, 1),
    ]
    events = m.process_bar(bar(2, 100, 105.5, 94.5, 100))
    fill, trip = events
    # stop first: min(95, 100) x 0.999 = 94.905 -> 94.90
    assert fill.reason is OrderReason.STOP_LOSS and fill.price == D("94.90")
    assert isinstance(trip, RoundTrip) and trip.exit_reason is OrderReason.STOP_LOSS
    assert m.open_orders == () and m.position == 0


def test_take_profit_fills_at_its_price_as_maker() -> None:
    m = entered()
    m.process_bar(bar(1, 100, 100.5, 99.5, 100))
    fill, trip = m.process_bar(bar(2, 101, 105.5, 99, 105))
    assert fill.reason is OrderReason.TAKE_PROFIT and fill.price == D(105) and fill.fee == D("0.03")
    assert trip.exit_reason is OrderReason.TAKE_PROFIT and m.open_orders == ()


def test_take_profit_touch_does_not_fill() -> None:
    m = entered()
    m.process_bar(bar(1, 100, 100.5, 99.5, 100))
    assert m.process_bar(bar(2, 101, 105.0, 99, 104)) == []


def test_bracket_can_fill_on_the_entry_bar() -> None:
    m = entered()
    events = m.process_bar(bar(1, 100, 100.5, 94.0, 96))
    assert [e.reason for e in events if isinstance(e, Fill)] == [OrderReason.ENTRY, OrderReason.STOP_LOSS]
    assert isinstance(events[-1], RoundTrip) and m.position == 0


def test_market_exit_cancels_the_bracket() -> None:
    m = entered()
    m.process_bar(bar(1, 100, 100.5, 99.5, 100))
    m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=1, reason=OrderReason.EXIT,
             reduce_only=True)
    events = m.process_bar(bar(2, 94, 106, 93, 100))  # would hit both, but the open comes first
    assert [e.reason for e in events if isinstance(e, Fill)] == [OrderReason.EXIT]
    assert m.open_orders == ()


def test_oco_siblings_in_the_same_phase_cancel_each_other() -> None:
    m = model()
    m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(2), ts=0)
    m.process_bar(bar(1, 100, 100, 100, 100))
    a = m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=1, price=D(101), oco_group=7)
    m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=1, price=D(102), oco_group=7)
    events = m.process_bar(bar(2, 100, 103, 100, 102))
    assert [e.order_id for e in events] == [a.id]
    assert m.open_orders == () and m.position == D(1)
