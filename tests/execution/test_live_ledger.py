"""ExecutionModel for live bots: restoring a ledger, protecting a position, and booking fills from outside.

A live bot never simulates fills: the executor reports them, possibly in pieces, and the model books
them (``external_fill`` + ``apply_fill``) with the same bracket / OCO / reduce-only rules as the
simulated path. A restarted bot continues its recorded ledger (``restore``) and re-arms brackets
(``protect``). Values are hand-computed with the helpers' config: cents, milli-lots, taker 10 bps,
maker 2 bps, slippage 10 bps.
"""

from __future__ import annotations

import pytest

from gordon_manager.execution import Fill, Liquidity, Order, OrderReason, OrderType, RoundTrip, Side

from .helpers import D, bar, model

# The buy of a round trip opened before a restart, as the ledger row stores it.
BOUGHT = Fill(-1, 0, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D("100.00"), D("100.00"), D("0.10"),
              Liquidity.TAKER)


def entry_limit(m, *, qty: str = "2", stop_loss: str | None = "95", take_profit: str | None = "110", ts: int = 0):
    """A buy limit entry carrying a bracket (a limit, so nothing in process_bar would ever be needed)."""
    return m.submit(side=Side.BUY, order_type=OrderType.LIMIT, qty=D(qty), ts=ts, price=D(100),
                    reason=OrderReason.ENTRY,
                    stop_loss=None if stop_loss is None else D(stop_loss),
                    take_profit=None if take_profit is None else D(take_profit))


def book(m, order, qty: str, price: str, fee: str, ts: int, *, done: bool = False):
    """external_fill + apply_fill, as the OrderBook does for an executor report."""
    fill = m.external_fill(order, qty=D(qty), price=D(price), fee=D(fee), ts=ts)
    return fill, m.apply_fill(order, fill, done=done)


def legs(m) -> list[tuple]:
    return [(o.type, o.reason, o.qty, o.price, o.reduce_only, o.oco_group, o.active_from) for o in m.open_orders]


# -- restore --------------------------------------------------------------------------------------
def test_restore_continues_the_recorded_ledger_and_its_open_round_trip() -> None:
    m = model()
    buy = Fill(-1, 1_000, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D("100.00"), D("100.00"),
               D("0.10"), Liquidity.TAKER)
    m.restore(cash=D("9899.90"), position=D(1), fees_paid=D("0.10"), trip=[buy])
    assert (m.cash, m.position, m.fees_paid, m.open_trip) == (D("9899.90"), D(1), D("0.10"), (buy,))
    assert m.average_entry == D("100.00")
    # The exit after the restart closes the very round trip the first process opened.
    sell = m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=2_000, reason=OrderReason.EXIT,
                    reduce_only=True)
    fill, events = book(m, sell, "1", "110.00", "0.11", 3_000, done=True)
    assert events[0] == fill
    trip = events[1]
    assert trip == RoundTrip(1_000, 3_000, D("100.00"), D("110.00"), D(1), D("10.00"), D("0.21"), D("9.79"),
                             2_000, OrderReason.EXIT)
    assert m.cash == D("10009.79") and m.position == 0 and m.open_trip == () and m.average_entry is None


def test_restore_keeps_the_trip_only_while_long() -> None:
    stale = Fill(-1, 1_000, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D(100), D(100), D("0.1"),
                 Liquidity.TAKER)
    m = model()
    m.restore(cash=D("10005"), position=D(0), fees_paid=D("0.2"), trip=[stale])
    assert m.open_trip == () and m.average_entry is None
    assert (m.cash, m.position, m.fees_paid) == (D("10005"), D(0), D("0.2"))


def test_restore_refuses_a_negative_position_and_changes_nothing() -> None:
    m = model()
    with pytest.raises(ValueError, match="negative position"):
        m.restore(cash=D(1), position=D("-0.001"), fees_paid=D(0))
    assert (m.cash, m.position, m.fees_paid) == (D(10000), D(0), D(0))


# -- protect ----------------------------------------------------------------------------------------
def test_protect_places_an_oco_pair_under_a_fresh_group() -> None:
    m = model()
    m.restore(cash=D(9000), position=D("1.5"), fees_paid=D(0))
    stop, target = m.protect(qty=D("1.5"), ts=500, stop_loss=D("95.129"), take_profit=D("110.001"))
    # The group consumed id 1, so it can never be mistaken for an order's id (the legs are 2 and 3).
    assert (stop.id, target.id) == (2, 3) and stop.oco_group == target.oco_group == 1
    assert legs(m) == [
        # levels rounded like the sells they are: stop down, take profit up
        (OrderType.STOP, OrderReason.STOP_LOSS, D("1.5"), D("95.12"), True, 1, 500),
        (OrderType.LIMIT, OrderReason.TAKE_PROFIT, D("1.5"), D("110.01"), True, 1, 500),
    ]
    # A second protect gets another group.
    again = m.protect(qty=D("0.5"), ts=600, stop_loss=D(90), take_profit=None)
    assert again[0].oco_group == 4 and again[0].id == 5


@pytest.mark.parametrize("stop_loss, take_profit, expected", [
    (D(95), None, [(OrderType.STOP, OrderReason.STOP_LOSS)]),
    (None, D(105), [(OrderType.LIMIT, OrderReason.TAKE_PROFIT)]),
    (None, None, []),
])
def test_protect_with_one_level_places_one_leg(stop_loss, take_profit, expected) -> None:
    m = model()
    m.restore(cash=D(9000), position=D(1), fees_paid=D(0))
    placed = m.protect(qty=D(1), ts=0, stop_loss=stop_loss, take_profit=take_profit)
    assert [(o.type, o.reason) for o in placed] == expected
    assert [(o.type, o.reason) for o in m.open_orders] == expected


def test_a_protected_leg_still_fills_in_the_simulation() -> None:
    # protect() only submits orders: the paper path must treat them like any bracket.
    m = model()
    m.restore(cash=D(9900), position=D(1), fees_paid=D("0.1"), trip=[BOUGHT])
    m.protect(qty=D(1), ts=0, stop_loss=D(95), take_profit=D(105))
    fill, trip = m.process_bar(bar(1, 100, 106, 99, 104))
    assert fill.reason is OrderReason.TAKE_PROFIT and fill.price == D(105) and m.open_orders == ()
    # 105.00 - 100.00, fees 0.10 + 0.03 (maker 2 bps of 105 = 0.021 -> 0.03)
    assert (trip.gross_pnl, trip.fees, trip.net_pnl) == (D("5.00"), D("0.13"), D("4.87"))


def test_a_position_restored_without_its_trip_still_closes_with_no_round_trip() -> None:
    # Without the entry's fills there is nothing to compute a round trip from: the ledger still moves.
    m = model()
    m.restore(cash=D(9900), position=D(1), fees_paid=D(0))
    assert m.average_entry is None  # no buys known
    m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=0, reason=OrderReason.EXIT, reduce_only=True)
    [fill] = m.process_bar(bar(1, 100, 100, 100, 100))
    # 100 x 0.999 = 99.90, fee 0.0999 -> 0.10
    assert (fill.notional, fill.fee) == (D("99.90"), D("0.10"))
    assert m.position == 0 and m.cash == D("9999.80") and m.open_trip == ()

    # the same for an executor's fills, in two parts
    m = model()
    m.restore(cash=D(9900), position=D(1), fees_paid=D(0))
    sell = m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=0, reduce_only=True)
    assert book(m, sell, "0.5", "100", "0.05", 1)[1][1:] == []
    fill, events = book(m, sell, "0.5", "100", "0.05", 2)
    assert events == [fill] and m.position == 0 and m.cash == D("9999.90") and m.open_trip == ()


# -- external_fill ----------------------------------------------------------------------------------------
def test_external_fill_rounds_the_notional_against_the_trader() -> None:
    m = model()
    buy = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0, reason=OrderReason.ENTRY)
    sell = m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=0, price=D(120),
                    reason=OrderReason.TAKE_PROFIT, reduce_only=True)
    # 0.333 x 100.01 = 33.30333: a buy pays 33.31, a sell receives 33.30
    bought = m.external_fill(buy, qty=D("0.333"), price=D("100.01"), fee=D("0.0333"), ts=7)
    sold = m.external_fill(sell, qty=D("0.333"), price=D("100.01"), fee=D("0.0067"), ts=8)
    assert bought == Fill(buy.id, 7, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D("0.333"), D("100.01"),
                          D("33.31"), D("0.0333"), Liquidity.TAKER)
    assert sold == Fill(sell.id, 8, Side.SELL, OrderType.LIMIT, OrderReason.TAKE_PROFIT, D("0.333"), D("100.01"),
                        D("33.30"), D("0.0067"), Liquidity.MAKER)
    # external_fill only builds the fill: nothing is booked yet
    assert m.cash == D(10000) and m.position == 0 and len(m.open_orders) == 2


def test_external_fill_liquidity_defaults_by_order_type_and_can_be_given() -> None:
    m = model()
    m.restore(cash=D(9000), position=D(3), fees_paid=D(0))
    stop = m.submit(side=Side.SELL, order_type=OrderType.STOP, qty=D(1), ts=0, price=D(90), reduce_only=True)
    limit = m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=0, price=D(110), reduce_only=True)
    args = dict(qty=D(1), price=D(100), fee=D(0), ts=1)
    assert m.external_fill(stop, **args).liquidity is Liquidity.TAKER
    assert m.external_fill(limit, **args).liquidity is Liquidity.MAKER
    # the executor knows better (a limit that crossed the book pays taker)
    assert m.external_fill(limit, liquidity=Liquidity.TAKER, **args).liquidity is Liquidity.TAKER


@pytest.mark.parametrize("qty, price, fee", [
    ("0", "100", "0"), ("-1", "100", "0"), ("1", "0", "0"), ("1", "-100", "0"), ("1", "100", "-0.01"),
])
def test_external_fill_rejects_impossible_values(qty, price, fee) -> None:
    m = model()
    order = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0)
    with pytest.raises(ValueError):
        m.external_fill(order, qty=D(qty), price=D(price), fee=D(fee), ts=1)


def test_external_fill_accepts_a_zero_fee() -> None:
    m = model()
    order = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0)
    assert m.external_fill(order, qty=D(1), price=D(100), fee=D(0), ts=1).fee == 0


# -- apply_fill ---------------------------------------------------------------------------------------
def test_partial_fills_keep_the_rest_working_and_the_bracket_covers_the_whole_fill() -> None:
    m = model()
    entry = entry_limit(m)
    fill, events = book(m, entry, "0.5", "100", "0.01", 10)
    assert events == [fill]
    assert m.position == D("0.5") and m.cash == D("9949.99") and m.fees_paid == D("0.01")
    # still working for the rest, and no bracket until the entry ends
    [rest] = m.open_orders
    assert rest.id == entry.id and rest.qty == D("1.5")

    # 1.5 x 99.99 = 149.985 -> a buy pays 149.99
    fill2, events = book(m, entry, "1.5", "99.99", "0.03", 20)
    assert events == [fill2]
    assert m.position == D(2) and m.cash == D("9799.97") and m.fees_paid == D("0.04")
    assert legs(m) == [
        (OrderType.STOP, OrderReason.STOP_LOSS, D(2), D(95), True, entry.id, 20),
        (OrderType.LIMIT, OrderReason.TAKE_PROFIT, D(2), D(110), True, entry.id, 20),
    ]
    assert m.open_trip == (fill, fill2)


def test_done_ends_a_partly_filled_order_with_a_bracket_for_what_filled() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "0.5", "100", "0", 10, done=True)
    assert [(o.reason, o.qty) for o in m.open_orders] == [(OrderReason.STOP_LOSS, D("0.5")),
                                                           (OrderReason.TAKE_PROFIT, D("0.5"))]


def test_the_bracket_is_placed_once() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "2", "100", "0", 10)
    # a stray extra fill of the finished entry books, but brings no second bracket
    book(m, entry, "0.1", "100", "0", 11)
    assert m.position == D("2.1")
    assert [o.reason for o in m.open_orders] == [OrderReason.STOP_LOSS, OrderReason.TAKE_PROFIT]


def test_first_fill_of_a_leg_removes_its_oco_sibling_and_the_last_one_closes_the_trip() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "2", "100", "0.20", 10)
    stop, target = m.open_orders
    sell1, events = book(m, target, "0.5", "110", "0.01", 20)
    assert events == [sell1]
    # the stop loss is gone at once; the take profit keeps working for the rest
    assert [(o.id, o.qty) for o in m.open_orders] == [(target.id, D("1.5"))]
    assert stop.id != target.id and m.position == D("1.5")
    sell2, events = book(m, target, "1.5", "110.01", "0.03", 30)
    # 1.5 x 110.01 = 165.015 -> a sell receives 165.01
    assert sell2.notional == D("165.01")
    # sold 55.00 + 165.01 = 220.01 for 200.00; exit price (55 + 165.015) / 2 = 110.0075 -> 110.01
    assert events == [sell2, RoundTrip(10, 30, D(100), D("110.01"), D(2), D("20.01"), D("0.24"), D("19.77"), 20,
                                       OrderReason.TAKE_PROFIT)]
    assert m.position == 0 and m.open_orders == () and m.open_trip == ()
    assert m.cash == D("10019.77") and m.fees_paid == D("0.24")


def test_reduce_only_orders_go_when_flat_and_others_stay() -> None:
    m = model()
    m.restore(cash=D(9000), position=D(1), fees_paid=D(0))
    guard = m.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=0, price=D(120), reduce_only=True)
    dip_buy = m.submit(side=Side.BUY, order_type=OrderType.LIMIT, qty=D(1), ts=0, price=D(80))
    exit_ = m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=0, reason=OrderReason.EXIT,
                     reduce_only=True)
    book(m, exit_, "0.4", "100", "0", 1)
    assert {o.id for o in m.open_orders} == {guard.id, dip_buy.id, exit_.id}  # not flat yet
    book(m, exit_, "0.6", "100", "0", 2)
    assert [o.id for o in m.open_orders] == [dip_buy.id]


def test_a_fill_of_an_order_no_longer_working_still_books() -> None:
    m = model()
    entry = entry_limit(m)
    m.cancel(entry.id)  # cancelled here, but the executor filled it before the cancel landed
    fill, events = book(m, entry, "1", "100", "0.02", 5, done=True)
    assert events == [fill]
    assert m.position == D(1) and m.cash == D("9899.98") and m.open_trip == (fill,)
    # its bracket was settled when it ended here: no bracket appears now
    assert m.open_orders == ()

    # the same for a leg cancelled locally (an exit replaced it) that filled anyway
    stop = m.submit(side=Side.SELL, order_type=OrderType.STOP, qty=D(1), ts=5, price=D(95),
                    reason=OrderReason.STOP_LOSS, reduce_only=True)
    m.cancel(stop.id)
    sold, events = book(m, stop, "1", "94.5", "0.09", 6)
    assert events[0] == sold and isinstance(events[1], RoundTrip) and events[1].net_pnl == D("-5.61")
    assert m.position == 0 and m.cash == D("9994.39")


# -- end_order ----------------------------------------------------------------------------------------
def test_end_order_gives_a_partly_filled_entry_its_bracket_for_the_filled_qty() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "0.7", "100", "0", 10)
    m.end_order(entry, ts=40)  # the executor cancelled / expired the rest
    assert legs(m) == [
        (OrderType.STOP, OrderReason.STOP_LOSS, D("0.7"), D(95), True, entry.id, 40),
        (OrderType.LIMIT, OrderReason.TAKE_PROFIT, D("0.7"), D(110), True, entry.id, 40),
    ]
    # ending it again (a duplicate report) changes nothing
    m.end_order(entry, ts=50)
    assert len(m.open_orders) == 2


def test_end_order_brackets_no_more_than_the_position_held() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "1", "100", "0", 10)
    manual = m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D("0.4"), ts=10)
    book(m, manual, "0.4", "100", "0", 11)
    m.end_order(entry, ts=12)
    assert [o.qty for o in m.open_orders] == [D("0.6"), D("0.6")]


def test_end_order_of_an_unfilled_entry_just_drops_it() -> None:
    m = model()
    entry = entry_limit(m)
    m.end_order(entry, ts=1)
    assert m.open_orders == () and m.position == 0


def test_end_order_of_an_unknown_order_is_a_no_op() -> None:
    m = model()
    entry = entry_limit(m)
    book(m, entry, "0.5", "100", "0", 10)
    stranger = Order(999, Side.BUY, OrderType.LIMIT, D(1), 0, 1, D(100), OrderReason.ENTRY, False, None,
                     D(95), D(110))
    m.end_order(stranger, ts=20)
    assert [(o.id, o.qty) for o in m.open_orders] == [(entry.id, D("1.5"))]
    # and the entry's partial fill is still remembered: finishing it brackets all 2
    book(m, entry, "1.5", "100", "0", 30)
    assert [o.qty for o in m.open_orders] == [D(2), D(2)]


def test_mark_filled_counts_in_the_bracket_of_a_restored_order() -> None:
    # A restarted bot restores a half-filled entry as an order for the rest, plus what had filled.
    m = model()
    m.restore(cash=D(9950), position=D("0.5"), fees_paid=D(0))
    rest = entry_limit(m, qty="1.5")
    m.mark_filled(rest.id, D("0.5"))
    book(m, rest, "1.5", "100", "0", 10)
    assert [o.qty for o in m.open_orders] == [D(2), D(2)]


# -- average_entry ----------------------------------------------------------------------------------
def test_average_entry_is_the_quantity_weighted_buy_price_on_the_tick() -> None:
    m = model()
    assert m.average_entry is None
    entry = entry_limit(m, stop_loss=None, take_profit=None)
    book(m, entry, "1", "100.00", "0", 1)
    assert m.average_entry == D("100.00")
    book(m, entry, "1", "100.01", "0", 2)
    # (100.00 + 100.01) / 2 = 100.005 -> half-even on the cent: 100.00
    assert m.average_entry == D("100.00")
    buy = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(2), ts=2)
    book(m, buy, "2", "103", "0", 3)
    # (200.01 + 206) / 4 = 101.5025 -> 101.50; sells do not move it
    assert m.average_entry == D("101.50")
    sell = m.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=3)
    book(m, sell, "1", "90", "0", 4)
    assert m.average_entry == D("101.50")


# -- the simulated path is unchanged ----------------------------------------------------------------
def test_process_bar_still_brackets_a_simulated_buy_for_its_filled_qty() -> None:
    m = model()
    entry = m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), ts=0, reason=OrderReason.ENTRY,
                     stop_loss=D(95), take_profit=D(105))
    [fill] = m.process_bar(bar(1, 100, 100.5, 99.5, 100))
    # 100 x 1.001 = 100.10; fee 0.1001 -> 0.11
    assert (fill.price, fill.notional, fill.fee) == (D("100.10"), D("100.10"), D("0.11"))
    assert legs(m) == [
        (OrderType.STOP, OrderReason.STOP_LOSS, D(1), D(95), True, entry.id, 1),
        (OrderType.LIMIT, OrderReason.TAKE_PROFIT, D(1), D(105), True, entry.id, 1),
    ]


def test_process_bar_brackets_the_clipped_qty_of_a_gapped_buy() -> None:
    # The bracket covers what filled, not what was asked: cash clips a buy after a gap up.
    m = model(initial_cash=D(1000))
    m.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=D(9), ts=0, reason=OrderReason.ENTRY,
             stop_loss=D(100))
    [fill] = m.process_bar(bar(1, 120, 120, 120, 120))
    # 120 x 1.001 = 120.12; 8.316 lots cost 998.92 + 1.00 fee, one more lot would not fit in 1000
    assert fill.qty == D("8.316")
    assert [o.qty for o in m.open_orders] == [D("8.316")]
