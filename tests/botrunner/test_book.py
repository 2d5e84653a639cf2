"""OrderBook: client order ids around a real ExecutionModel, and the writes each change implies (no IO).

Paper bots: the model simulates and ``after_bar`` records what it did. Live bots: every order the
model submits becomes a ``new`` intent, every order it drops without the executor having ended it a
``cancel`` intent, and the executor's reports (``apply_fill`` / ``apply_status``) move the ledger.
Numbers use tests/execution/helpers.CFG: cents, milli-lots, taker 10 bps, maker 2 bps, slippage 10 bps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gordon_manager.botrunner import contract
from gordon_manager.botrunner.bar_loop import BarLoop
from gordon_manager.botrunner.book import FillRow, OrderBook, fill_from_json, fill_json, ms_to_dt
from gordon_manager.execution import (
    Bar,
    Decision,
    ExecutionModel,
    Fill,
    Liquidity,
    OrderReason,
    OrderType,
    Side,
)
from gordon_manager.execution.policy import decide
from tests.execution.helpers import CFG, D

BOT = 7
T = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a bar open time
M = 60_000  # one 1m bar
ENTRY = f"gb{BOT}-{T}-0"


def new_book(mode: str = "live") -> OrderBook:
    return OrderBook(bot_id=BOT, symbol="BTCUSDT", mode=mode, model=ExecutionModel(CFG))


def enter(book: OrderBook, *, ts: int = T, qty: str = "1", sl: str | None = "95", tp: str | None = "105",
          order_type: OrderType = OrderType.MARKET, price: str | None = None) -> str:
    """A buy entry decided at bar ``ts`` (with its bracket levels), registered; returns its client order id."""
    order = book.model.submit(side=Side.BUY, order_type=order_type, qty=D(qty), ts=ts,
                              price=None if price is None else D(price), reason=OrderReason.ENTRY,
                              stop_loss=None if sl is None else D(sl), take_profit=None if tp is None else D(tp))
    book.sync(ts)
    return book.coid_of(order.id)


def fill(coid: str, qty: str, price: str, fee: str, *, fill_id: str, ms: int) -> contract.FillReport:
    return contract.FillReport(type="fill", fill_id=fill_id, client_order_id=coid, qty=D(qty), price=D(price),
                               fee=D(fee), ts=ms_to_dt(ms))


def status(coid: str, value: str, *, ms: int, reason: str | None = None) -> contract.StatusReport:
    return contract.StatusReport(type="status", client_order_id=coid, status=value, reason=reason, ts=ms_to_dt(ms))


def filled_entry(book: OrderBook) -> str:
    """An entry of 1 filled at 100 (fee 0.10), its bracket placed; pending writes discarded."""
    coid = enter(book)
    book.apply_fill(fill(coid, "1", "100", "0.10", fill_id="ex-entry", ms=T + M))
    book.take()
    return coid


def intents(changes) -> list[tuple[str, str]]:
    return [(i.client_order_id, i.kind) for i in changes.intents]


def statuses(changes) -> list[tuple[str, str]]:
    return [(r.client_order_id, r.status) for r in changes.orders]


# -- client order ids ------------------------------------------------------------------------------
def test_order_ids_count_orders_per_decision_bar() -> None:
    book = new_book()
    first = enter(book, ts=T)
    second = enter(book, ts=T, order_type=OrderType.LIMIT, price="90")
    later = enter(book, ts=T + M, order_type=OrderType.LIMIT, price="80")
    assert (first, second, later) == (f"gb7-{T}-0", f"gb7-{T}-1", f"gb7-{T + M}-0")
    assert [r.bar_ts for r in book.records.values()] == [T, T, T + M]


def test_contract_id_helpers_fit_exchange_client_order_ids() -> None:
    entry = contract.order_id(999_999_999, 9_999_999_999_999, 9)
    ids = [entry, contract.leg_id(entry, "sl", 9), contract.leg_id(entry, "tp", 9), contract.oco_group(entry, 9),
           contract.flatten_id(999_999_999, 999_999), contract.cancel_id(contract.leg_id(entry, "tp", 9))]
    assert ids[1:4] == [f"{entry}-sl9", f"{entry}-tp9", f"{entry}-oco9"]
    assert ids[4] == "gb999999999-v999999-flat" and ids[5] == f"{entry}-tp9-x"
    # at most 36 characters of [A-Za-z0-9-] for bot ids below 10^9 (what Binance accepts)
    assert all(len(i) <= 36 and i.replace("-", "").isalnum() for i in ids), ids


# -- paper ---------------------------------------------------------------------------------------------
def test_paper_records_simulated_fills_and_the_bracket_then_the_oco_exit() -> None:
    book = new_book("paper")
    coid = enter(book)
    changes = book.take()
    assert statuses(changes) == [(coid, "new")] and changes.intents == []  # paper sends nothing

    entry_bar = Bar(T + M, 100, 100.5, 99.5, 100, 1)
    events = book.model.process_bar(entry_bar)
    book.after_bar(entry_bar, events)
    changes = book.take()
    [bought] = events
    assert changes.fills == [FillRow(f"sim-{coid}", coid, "simulated", bought)]
    # the legs the fill submitted are named first (a leg may fill in the very same bar)
    assert statuses(changes) == [(f"{coid}-sl0", "new"), (f"{coid}-tp0", "new"), (coid, "filled")]
    assert book.records[coid].filled_qty == D(1) and book.records[coid].order is None
    assert changes.intents == []
    assert [(r.oco_group, r.parent_id, r.qty, r.price) for r in changes.orders[:2]] == [
        (f"{coid}-oco0", coid, D(1), D(95)), (f"{coid}-oco0", coid, D(1), D(105))]

    exit_bar = Bar(T + 2 * M, 101, 106, 100, 105, 1)
    events = book.model.process_bar(exit_bar)
    book.after_bar(exit_bar, events)
    changes = book.take()
    assert [f.fill_id for f in changes.fills] == [f"sim-{coid}-tp0"]
    assert statuses(changes) == [(f"{coid}-tp0", "filled"), (f"{coid}-sl0", "cancelled")]
    assert book.records[f"{coid}-sl0"].status_reason == "bracket"
    # buy 100.10 + 0.11 fee, sell 105.00 - 0.03 fee (maker): net 4.76
    assert book.realized_pnl == D("4.76")
    assert book.ledger()["trip"] == [] and book.ledger()["qty"] == 0 and book.open_records == []


def test_paper_rejection_is_recorded_with_its_reason() -> None:
    book = new_book("paper")
    sell = book.model.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=T)
    book.sync(T)
    book.take()
    bar = Bar(T + M, 100, 100, 100, 100, 1)
    book.after_bar(bar, book.model.process_bar(bar))
    changes = book.take()
    coid = book.coid_of(sell.id)
    assert statuses(changes) == [(coid, "rejected")] and changes.fills == []
    assert book.records[coid].status_reason == "no_position"


def test_paper_bracket_filled_on_the_entry_bar_is_recorded() -> None:
    book = new_book("paper")
    coid = enter(book)
    bar = Bar(T + M, 100, 100.5, 94.0, 96, 1)  # fills the entry, then touches its stop loss
    events = book.model.process_bar(bar)
    assert [type(e).__name__ for e in events] == ["Fill", "Fill", "RoundTrip"]
    book.after_bar(bar, events)
    changes = book.take()
    assert [f.fill_id for f in changes.fills] == [f"sim-{coid}", f"sim-{coid}-sl0"]
    assert book.ledger()["qty"] == 0 and book.realized_pnl == D("-5.41")


# -- live: intents ------------------------------------------------------------------------------------
def test_a_live_decision_becomes_a_new_intent_and_nothing_is_simulated() -> None:
    loop = BarLoop("donchian_breakout", {"entry_period": 3, "exit_period": 3, "stop_pct": 0.05,
                                         "take_profit_pct": 0.1}, CFG)
    book = OrderBook(bot_id=BOT, symbol="BTCUSDT", mode="live", model=loop.model)
    book.run_id = 42
    decisions = []
    for i, close in enumerate([100, 100, 100, 100, 102, 103]):
        bar = Bar(T + i * M, close, close + 0.5, close - 0.5, close, 1)
        events = loop.on_bar(bar, simulate=False)
        for item in events:
            if type(item) is Decision:
                book.on_decision(item)
                decisions.append(item)
        book.after_bar(bar, events)
    # one decision (the breakout at bar 4), never filled by the model
    [decision] = decisions
    assert decision.ts == T + 4 * M and loop.model.position == 0
    changes = book.take()
    coid = f"gb7-{T + 4 * M}-0"
    [intent] = changes.intents
    assert (intent.client_order_id, intent.kind) == (coid, "new")
    message = contract.NewOrderIntent.model_validate_json(intent.payload)
    assert message.model_dump(exclude={"created_at"}) == {
        "type": "new", "client_order_id": coid, "bot_id": 7, "run_id": 42, "symbol": "BTCUSDT", "side": "buy",
        "order_type": "market", "qty": decision.qty, "price": None, "reduce_only": False, "oco_group": None,
        "reason": "entry", "bar_at": datetime(2024, 1, 1, 0, 4, tzinfo=UTC), "ref_price": D("102.0"),
    }
    raw = json.loads(intent.payload)
    assert raw["qty"] == "97.835" and raw["refPrice"] == "102.0" and raw["barAt"] == "2024-01-01T00:04:00Z"
    rec = book.records[coid]
    assert (rec.stop_loss, rec.take_profit) == (decision.stop_loss, decision.take_profit)
    assert statuses(changes) == [(coid, "new")]


def test_partial_then_complete_fill_and_the_bracket_goes_out_as_new_intents() -> None:
    book = new_book()
    coid = enter(book)
    book.take()
    events = book.apply_fill(fill(coid, "0.4", "100", "0.04", fill_id="ex-1", ms=T + M + 1_000))
    changes = book.take()
    assert [type(e) for e in events] == [Fill]
    assert statuses(changes) == [(coid, "partially_filled")] and changes.intents == []
    assert [(f.fill_id, f.client_order_id, f.source, f.fill.qty, f.fill.notional) for f in changes.fills] == [
        ("ex-1", coid, "executor", D("0.4"), D("40.00"))]
    assert book.records[coid].filled_qty == D("0.4") and book.model.position == D("0.4")

    book.apply_fill(fill(coid, "0.6", "100.5", "0.06", fill_id="ex-2", ms=T + M + 2_000))
    changes = book.take()
    sl, tp = f"{coid}-sl0", f"{coid}-tp0"
    assert statuses(changes) == [(coid, "filled"), (sl, "new"), (tp, "new")]
    assert intents(changes) == [(sl, "new"), (tp, "new")]
    legs = [contract.NewOrderIntent.model_validate_json(i.payload) for i in changes.intents]
    assert [(m.order_type, m.side, m.qty, m.price, m.reduce_only, m.oco_group, m.reason, m.bar_at)
            for m in legs] == [("stop", "sell", D(1), D(95), True, f"{coid}-oco0", "stop_loss", None),
                               ("limit", "sell", D(1), D(105), True, f"{coid}-oco0", "take_profit", None)]
    assert book.records[sl].parent_id == coid and book.records[coid].filled_qty == D(1)


def test_ledger_holds_the_position_and_the_open_trip_with_client_order_ids() -> None:
    book = new_book()
    assert book.ledger() == {"qty": D(0), "avg_entry_price": None, "cash": D(10000), "fees_paid": D(0),
                             "realized_pnl": D(0), "trip": []}
    coid = enter(book, sl=None, tp=None)
    book.apply_fill(fill(coid, "0.4", "100", "0.04", fill_id="ex-1", ms=T + M))
    book.apply_fill(fill(coid, "0.6", "100.5", "0.06", fill_id="ex-2", ms=T + M + 500))
    leg = {"clientOrderId": coid, "side": "buy", "orderType": "market", "reason": "entry", "liquidity": "taker"}
    assert book.ledger() == {
        "qty": D(1), "avg_entry_price": D("100.30"),  # (40 + 60.3) / 1
        "cash": D("9899.60"), "fees_paid": D("0.10"), "realized_pnl": D(0),
        "trip": [{**leg, "ts": T + M, "qty": "0.4", "price": "100", "notional": "40.00", "fee": "0.04"},
                 {**leg, "ts": T + M + 500, "qty": "0.6", "price": "100.5", "notional": "60.30", "fee": "0.06"}],
    }
    # what the ledger row stores is what a restarted model continues from
    restored = [fill_from_json(f) for f in book.ledger()["trip"]]
    assert [f._replace(order_id=0) for f in restored] == [f._replace(order_id=0) for f in book.model.open_trip]

    exit_ = book.model.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=T + M,
                              reason=OrderReason.EXIT, reduce_only=True)
    book.sync(T + M)
    book.apply_fill(fill(book.coid_of(exit_.id), "1", "110", "0.11", fill_id="ex-3", ms=T + 2 * M))
    # sold 110.00 for 100.30, fees 0.21: net 9.49
    assert book.ledger() == {"qty": D(0), "avg_entry_price": None, "cash": D("10009.49"), "fees_paid": D("0.21"),
                             "realized_pnl": D("9.49"), "trip": []}


# -- live: status reports ---------------------------------------------------------------------------------
def test_accepted_moves_new_to_accepted_once() -> None:
    book = new_book()
    coid = enter(book)
    book.take()
    book.apply_status(status(coid, "accepted", ms=T + 10))
    changes = book.take()
    assert statuses(changes) == [(coid, "accepted")] and changes.notes == [] and changes.intents == []
    book.apply_status(status(coid, "accepted", ms=T + 20))  # a redelivery
    assert not book.take()


def test_a_rejected_entry_leaves_the_position_unchanged() -> None:
    book = new_book()
    coid = enter(book)
    book.take()
    before = book.ledger()
    book.apply_status(status(coid, "rejected", ms=T + 10, reason="insufficient balance"))
    changes = book.take()
    assert statuses(changes) == [(coid, "rejected")] and changes.intents == []
    assert book.records[coid].status_reason == "insufficient balance"
    assert changes.notes == [("order_rejected", "warning", f"{coid} rejected: insufficient balance",
                              {"clientOrderId": coid, "reason": "insufficient balance", "side": "buy", "qty": "1"})]
    assert book.ledger() == before and book.model.open_orders == () and book.open_records == []
    # a late report about a finished order changes nothing
    book.apply_status(status(coid, "cancelled", ms=T + 20))
    assert not book.take() and book.records[coid].status == "rejected"


@pytest.mark.parametrize("value", ["cancelled", "expired"])
def test_a_partly_filled_entry_that_ends_gets_a_bracket_for_its_fill(value) -> None:
    book = new_book()
    coid = enter(book, order_type=OrderType.LIMIT, price="100", qty="2")
    book.apply_fill(fill(coid, "0.4", "100", "0", fill_id="ex-1", ms=T + M))
    book.take()
    book.apply_status(status(coid, value, ms=T + 2 * M, reason="GTD"))
    changes = book.take()
    assert statuses(changes) == [(coid, value), (f"{coid}-sl0", "new"), (f"{coid}-tp0", "new")]
    assert intents(changes) == [(f"{coid}-sl0", "new"), (f"{coid}-tp0", "new")]
    assert [contract.NewOrderIntent.model_validate_json(i.payload).qty for i in changes.intents] == [D("0.4")] * 2
    assert [(n[0], n[1]) for n in changes.notes] == [(f"order_{value}", "info")]
    assert book.model.position == D("0.4")


# -- live: orders the model drops ---------------------------------------------------------------------
def test_oco_sibling_becomes_a_cancel_intent_and_its_late_fill_still_books() -> None:
    book = new_book()
    coid = filled_entry(book)
    sl, tp = f"{coid}-sl0", f"{coid}-tp0"
    book.apply_fill(fill(tp, "0.4", "105", "0.01", fill_id="ex-tp", ms=T + 2 * M))
    changes = book.take()
    assert statuses(changes) == [(tp, "partially_filled"), (sl, "cancelling")]
    assert intents(changes) == [(f"{sl}-x", "cancel")]
    cancel = contract.CancelIntent.model_validate_json(changes.intents[0].payload)
    assert (cancel.client_order_id, cancel.orig_client_order_id, cancel.bot_id, cancel.symbol, cancel.reason) == (
        f"{sl}-x", sl, BOT, "BTCUSDT", "bracket")
    assert book.records[sl].status_reason == "bracket"

    # the stop triggered at the exchange before the cancel landed
    book.apply_fill(fill(sl, "0.6", "94.9", "0.06", fill_id="ex-sl", ms=T + 2 * M + 1))
    changes = book.take()
    # flat now: the rest of the take profit (reduce-only) is cancelled in turn
    assert statuses(changes) == [(sl, "cancelling"), (tp, "cancelling")]
    assert intents(changes) == [(f"{tp}-x", "cancel")]
    assert [f.fill_id for f in changes.fills] == ["ex-sl"]
    # bought 100.00 (+0.10), sold 42.00 (-0.01) and 56.94 (-0.06): net -1.23
    ledger = book.ledger()
    assert (ledger["qty"], ledger["cash"], ledger["realized_pnl"], ledger["trip"]) == (
        D(0), D("9998.77"), D("-1.23"), [])
    # the executor confirms the cancels
    book.apply_status(status(sl, "cancelled", ms=T + 3 * M))
    book.apply_status(status(f"{sl}-x", "cancelled", ms=T + 3 * M))  # an answer about the cancel itself
    changes = book.take()
    assert statuses(changes) == [(sl, "cancelled")] and [n[0] for n in changes.notes] == ["order_cancelled"]
    assert [r.client_order_id for r in book.open_records] == [tp]


def test_an_exit_decision_cancels_the_bracket_and_a_late_stop_fill_still_books() -> None:
    book = new_book()
    coid = filled_entry(book)
    sl, tp = f"{coid}-sl0", f"{coid}-tp0"
    bar = Bar(T + 2 * M, 100, 101, 99, 99.5, 1)
    decision = decide(book.model, bar, entry=False, exit_=True)
    assert decision is not None and decision.reason is OrderReason.EXIT
    book.on_decision(decision)
    book.after_bar(bar, [decision])
    changes = book.take()
    exit_ = f"gb7-{T + 2 * M}-0"
    # the bracket's cancels go out before the exit: the position is never sold twice
    assert intents(changes) == [(f"{sl}-x", "cancel"), (f"{tp}-x", "cancel"), (exit_, "new")]
    sent = contract.NewOrderIntent.model_validate_json(changes.intents[2].payload)
    assert (sent.side, sent.qty, sent.reduce_only, sent.reason, sent.ref_price) == (
        "sell", D(1), True, "exit", D("99.5"))
    assert [book.records[c].status for c in (sl, tp)] == ["cancelling", "cancelling"]
    assert contract.CancelIntent.model_validate_json(changes.intents[0].payload).reason == "exit"

    book.apply_fill(fill(sl, "1", "95", "0.10", fill_id="ex-sl", ms=T + 2 * M + 5))
    changes = book.take()
    # the stop sold everything: the exit, reduce-only, has nothing left to sell and is cancelled
    assert statuses(changes) == [(sl, "filled"), (exit_, "cancelling")]
    assert intents(changes) == [(f"{exit_}-x", "cancel")]
    assert book.ledger()["qty"] == 0 and book.realized_pnl == D("-5.20")  # 95.00 - 100.00 - 0.20 fees
    assert book.model.open_orders == ()


def test_an_entry_decision_cancels_nothing() -> None:
    book = new_book()
    book.model.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=D(1), ts=T, price=D(120), reduce_only=True)
    book.sync(T)
    bar = Bar(T, 100, 100, 100, 100, 1)
    decision = decide(book.model, bar, entry=True, exit_=False)
    book.on_decision(decision)
    assert len(book.model.open_orders) == 2


# -- unknown reports ---------------------------------------------------------------------------------
def test_reports_for_unknown_orders_become_notes_and_change_nothing() -> None:
    book = new_book()
    coid = enter(book)
    book.take()
    before = book.ledger()
    assert book.apply_fill(fill("gb7-1-0", "1", "100", "0.1", fill_id="ex-9", ms=T)) == []
    book.apply_status(status("gb8-1-0", "cancelled", ms=T))
    book.apply_status(status(f"{coid}-x", "cancelled", ms=T))  # the answer to one of our cancels: expected
    changes = book.take()
    assert changes.fills == [] and changes.orders == [] and changes.intents == []
    assert changes.notes == [
        ("unknown_order_report", "error", "fill ex-9 for unknown order gb7-1-0",
         {"fillId": "ex-9", "clientOrderId": "gb7-1-0"}),
        ("unknown_order_report", "warning", "cancelled for unknown order gb8-1-0",
         {"clientOrderId": "gb8-1-0", "status": "cancelled"}),
    ]
    assert book.ledger() == before


# -- restore ----------------------------------------------------------------------------------------
def order_row(coid: str, **kw) -> dict:
    """A trading.bot_orders row as ledger_store.recover returns it."""
    row = {"client_order_id": coid, "side": "buy", "order_type": "limit", "qty": D(2), "price": D(100),
           "reduce_only": False, "oco_group": None, "reason": "entry", "stop_loss": None, "take_profit": None,
           "parent_id": None, "bar_at": ms_to_dt(T), "status": "accepted", "filled_qty": D(0),
           "status_reason": None}
    row.update(kw)
    return row


def restored_book(*, persist: bool = False) -> OrderBook:
    """A restarted bot: 0.5 of a 2-lot entry filled, and a sell it had asked to cancel."""
    book = new_book()
    bought = Fill(-1, T + M, Side.BUY, OrderType.LIMIT, OrderReason.ENTRY, D("0.5"), D(100), D("50.00"), D("0.01"),
                  Liquidity.MAKER)
    book.model.restore(cash=D("9949.99"), position=D("0.5"), fees_paid=D("0.01"), trip=[bought])
    book.restore(orders=[order_row(ENTRY, status="partially_filled", filled_qty=D("0.5"), stop_loss=D(95),
                                   take_profit=D(110)),
                         order_row("gb7-99-0", side="sell", qty=D("0.5"), price=D(120), reduce_only=True,
                                   reason="manual", status="cancelling")],
                 trip_ids=[ENTRY], generations={ENTRY: 1}, realized_pnl=D("3.5"), persist=persist)
    return book


def test_restore_puts_working_orders_back_and_keeps_cancelling_ones_aside() -> None:
    book = restored_book()
    assert not book.take()  # nothing to write: these rows are already this bot's
    [working] = book.model.open_orders
    assert (working.side, working.type, working.qty, working.price, working.stop_loss, working.take_profit) == (
        Side.BUY, OrderType.LIMIT, D("1.5"), D(100), D(95), D(110))
    assert book.coid_of(working.id) == ENTRY
    aside = book.records["gb7-99-0"]
    assert aside.order is not None and aside.order.id < 0 and aside.status == "cancelling"
    assert [r.client_order_id for r in book.open_records] == [ENTRY, "gb7-99-0"]
    assert book.records[ENTRY].bar_ts == T and book.records[ENTRY].filled_qty == D("0.5")
    ledger = book.ledger()
    assert [f["clientOrderId"] for f in ledger["trip"]] == [ENTRY] and ledger["realized_pnl"] == D("3.5")

    # the rest fills: bracket for all 2 lots, under the next generation of this entry's brackets
    book.apply_fill(fill(ENTRY, "1.5", "100", "0.03", fill_id="ex-2", ms=T + 2 * M))
    changes = book.take()
    assert statuses(changes) == [(ENTRY, "filled"), (f"{ENTRY}-sl1", "new"), (f"{ENTRY}-tp1", "new")]
    assert {book.records[c].oco_group for c in (f"{ENTRY}-sl1", f"{ENTRY}-tp1")} == {f"{ENTRY}-oco1"}
    assert [o.qty for o in book.model.open_orders] == [D(2), D(2)]
    assert [f["clientOrderId"] for f in book.ledger()["trip"]] == [ENTRY, ENTRY]

    # the order asked to cancel before the restart fills after all: it still books
    book.apply_fill(fill("gb7-99-0", "0.5", "120", "0.01", fill_id="ex-3", ms=T + 3 * M))
    changes = book.take()
    assert statuses(changes) == [("gb7-99-0", "filled")]
    assert book.model.position == D("1.5") and book.ledger()["cash"] == D("9859.95")  # 9949.99 - 150.03 + 59.99


def test_restore_with_persist_writes_the_orders_as_this_bots() -> None:
    book = restored_book(persist=True)
    assert statuses(book.take()) == [(ENTRY, "partially_filled"), ("gb7-99-0", "cancelling")]


def test_restored_oco_legs_stay_one_cancels_other() -> None:
    book = new_book()
    book.model.restore(cash=D(9900), position=D(1), fees_paid=D(0), trip=[
        Fill(-1, T, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D(100), D(100), D(0), Liquidity.TAKER)])
    leg = {"side": "sell", "qty": D(1), "reduce_only": True, "oco_group": f"{ENTRY}-oco0", "parent_id": ENTRY,
           "bar_at": None}
    book.restore(orders=[order_row(f"{ENTRY}-sl0", order_type="stop", price=D(95), reason="stop_loss", **leg),
                         order_row(f"{ENTRY}-tp0", price=D(110), reason="take_profit", **leg)],
                 trip_ids=[ENTRY], generations={ENTRY: 1}, realized_pnl=D(0))
    book.apply_fill(fill(f"{ENTRY}-tp0", "0.5", "110", "0", fill_id="ex-1", ms=T + M))
    changes = book.take()
    assert intents(changes) == [(f"{ENTRY}-sl0-x", "cancel")]


# -- rearm ------------------------------------------------------------------------------------------
LEVELS = {"client_order_id": ENTRY, "stop_loss": D(95), "take_profit": D(110)}


def long_book(qty: str = "1") -> OrderBook:
    book = new_book()
    book.model.restore(cash=D(9900), position=D(qty), fees_paid=D(0), trip=[
        Fill(-1, T, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(qty), D(100), D(100), D(0), Liquidity.TAKER)])
    book.restore(orders=[], trip_ids=[ENTRY], generations={ENTRY: 2}, realized_pnl=D(0))
    return book


def test_rearm_places_the_bracket_of_a_recovered_position_under_the_next_generation() -> None:
    book = long_book("1.5")
    assert book.rearm(entry=LEVELS, ts=T + 10 * M) is True
    changes = book.take()
    sl, tp = f"{ENTRY}-sl2", f"{ENTRY}-tp2"
    assert intents(changes) == [(sl, "new"), (tp, "new")]
    assert [(r.qty, r.price, r.oco_group, r.parent_id, r.reduce_only) for r in changes.orders] == [
        (D("1.5"), D(95), f"{ENTRY}-oco2", ENTRY, True), (D("1.5"), D(110), f"{ENTRY}-oco2", ENTRY, True)]
    assert changes.notes == [("bracket_rearmed", "info", "bracket re-armed for 1.5",
                              {"stopLoss": "95", "takeProfit": "110", "entry": ENTRY})]
    # a bracket is working now: nothing more to re-arm
    assert book.rearm(entry=LEVELS, ts=T + 11 * M) is False and not book.take()
    # a stop cancels it; the next start re-arms it again, one generation further
    book.cancel_all(ts=T + 12 * M)
    book.take()
    assert book.rearm(entry=LEVELS, ts=T + 13 * M) is True
    assert intents(book.take()) == [(f"{ENTRY}-sl3", "new"), (f"{ENTRY}-tp3", "new")]


def test_rearm_with_one_level_and_no_recorded_generation() -> None:
    book = new_book()
    book.model.restore(cash=D(9900), position=D(1), fees_paid=D(0), trip=[
        Fill(-1, T, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D(100), D(100), D(0), Liquidity.TAKER)])
    assert book.rearm(entry={"client_order_id": ENTRY, "stop_loss": "95.5", "take_profit": None}, ts=T) is True
    changes = book.take()
    assert intents(changes) == [(f"{ENTRY}-sl0", "new")]
    assert changes.notes[0][3] == {"stopLoss": "95.5", "takeProfit": None, "entry": ENTRY}


@pytest.mark.parametrize("case", ["flat", "no_entry", "no_levels", "reduce_only_working"])
def test_rearm_does_nothing_when_it_must_not(case) -> None:
    book = long_book()
    entry = LEVELS
    if case == "flat":
        book = new_book()
    elif case == "no_entry":
        entry = None
    elif case == "no_levels":
        entry = {"client_order_id": ENTRY, "stop_loss": None, "take_profit": None}
    else:  # an exit already working protects the position as far as rearm is concerned
        book.model.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=D(1), ts=T, reason=OrderReason.EXIT,
                          reduce_only=True)
        book.sync(T)
        book.take()
    before = list(book.model.open_orders)
    assert book.rearm(entry=entry, ts=T) is False
    assert not book.take() and list(book.model.open_orders) == before


# -- cancel_all and flatten ----------------------------------------------------------------------------
def test_cancel_all_live_asks_the_executor_to_cancel_every_working_order() -> None:
    book = new_book()
    coid = filled_entry(book)
    dip = enter(book, ts=T + 2 * M, order_type=OrderType.LIMIT, price="90", sl=None, tp=None)
    book.take()
    assert book.cancel_all(ts=T + 3 * M) == 3
    changes = book.take()
    targets = [f"{coid}-sl0", f"{coid}-tp0", dip]
    assert statuses(changes) == [(c, "cancelling") for c in targets]
    assert intents(changes) == [(f"{c}-x", "cancel") for c in targets]
    assert {contract.CancelIntent.model_validate_json(i.payload).reason for i in changes.intents} == {"stop"}
    assert book.model.open_orders == () and book.model.position == 1
    # the cancels are under way: a second stop sends nothing again
    assert book.cancel_all(ts=T + 4 * M) == 0 and not book.take()


def test_cancel_all_paper_cancels_at_once() -> None:
    book = new_book("paper")
    coid = enter(book, order_type=OrderType.LIMIT, price="90")
    book.take()
    assert book.cancel_all(ts=T + M) == 1
    changes = book.take()
    assert statuses(changes) == [(coid, "cancelled")] and changes.intents == []
    assert book.records[coid].status_reason == "stop"


def test_flatten_cancels_everything_then_sells_the_whole_position() -> None:
    book = long_book("1.5")
    book.rearm(entry=LEVELS, ts=T)
    book.take()
    rec = book.flatten(ts=T + 5 * M, config_version=4, ref_price=101.5)
    changes = book.take()
    flat = "gb7-v4-flat"
    assert rec is book.records[flat]
    assert (rec.side, rec.order_type, rec.qty, rec.reduce_only, rec.reason, rec.status) == (
        Side.SELL, OrderType.MARKET, D("1.5"), True, OrderReason.FLATTEN, "new")
    assert intents(changes) == [(f"{ENTRY}-sl2-x", "cancel"), (f"{ENTRY}-tp2-x", "cancel"), (flat, "new")]
    sent = contract.NewOrderIntent.model_validate_json(changes.intents[-1].payload)
    assert (sent.qty, sent.ref_price, sent.reason, sent.bar_at) == (D("1.5"), D("101.5"), "flatten",
                                                                   ms_to_dt(T + 5 * M))
    assert [o.reason for o in book.model.open_orders] == [OrderReason.FLATTEN]


def test_flatten_when_flat_only_cancels() -> None:
    book = new_book()
    enter(book, order_type=OrderType.LIMIT, price="90")
    book.take()
    assert book.flatten(ts=T + M, config_version=1) is None
    changes = book.take()
    assert [i.kind for i in changes.intents] == ["cancel"] and book.model.open_orders == ()


def test_flatten_again_returns_the_flatten_already_open() -> None:
    book = long_book()
    first = book.flatten(ts=T, config_version=4)
    book.take()
    again = book.flatten(ts=T + M, config_version=4)
    assert again is first
    # no second sell under the same id, and the model does not hold one either
    assert [i for i in book.take().intents if i.kind == "new"] == []
    assert sum(o.reason is OrderReason.FLATTEN for o in book.model.open_orders) <= 1


def test_flatten_after_a_restart_keeps_the_flatten_under_way() -> None:
    book = new_book()
    book.model.restore(cash=D(9900), position=D(1), fees_paid=D(0), trip=[
        Fill(-1, T, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, D(1), D(100), D(100), D(0), Liquidity.TAKER)])
    book.restore(orders=[order_row("gb7-v4-flat", side="sell", order_type="market", qty=D(1), price=None,
                                   reduce_only=True, reason="flatten", bar_at=None)],
                 trip_ids=[ENTRY], generations={}, realized_pnl=D(0))
    rec = book.flatten(ts=T + M, config_version=4)
    changes = book.take()
    assert rec is book.records["gb7-v4-flat"]
    assert intents(changes) == []  # neither a second sell nor a cancel of the first
    assert rec.status == "accepted" and [o.reason for o in book.model.open_orders] == [OrderReason.FLATTEN]


def test_fill_json_round_trips_through_the_ledger_row() -> None:
    original = Fill(3, T, Side.SELL, OrderType.STOP, OrderReason.STOP_LOSS, D("0.00000001"), D("94.90"), D("0.00"),
                    D("0"), Liquidity.TAKER)
    data = fill_json(original, "gb7-1-0-sl0")
    assert data["clientOrderId"] == "gb7-1-0-sl0"
    # exact both ways, down to the smallest lot (the model's own id is process-local: -1)
    assert fill_from_json(data) == original._replace(order_id=-1)


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_each_order_placed_is_counted_once_fills_are_not(mode: str):
    """gordon_bot_orders_total counts orders placed (via on_placed): the entry, then its bracket's two legs
    once it fills; the fill itself and the re-sync of known orders count nothing."""
    placed: list[Side] = []
    book = OrderBook(bot_id=BOT, symbol="BTCUSDT", mode=mode, model=ExecutionModel(CFG), on_placed=placed.append)
    coid = enter(book)
    assert placed == [Side.BUY]
    book.sync(T)  # nothing new
    assert placed == [Side.BUY]
    if mode == "live":
        book.apply_fill(fill(coid, "1", "100", "0.10", fill_id="ex-entry", ms=T + M))
        assert placed == [Side.BUY, Side.SELL, Side.SELL]  # stop-loss and take-profit legs
