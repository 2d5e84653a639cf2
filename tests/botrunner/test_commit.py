"""The bot's one write statement (``botrunner/commit.py``) against the real PostgreSQL, as the bot role.

What the statement must keep from the transactions it replaced: every table written together or
none at all, events and intents in the order they happened, an intent already in the outbox not
new again, an order's last state winning, a fill booked once, the ledger row only when given.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest

from gordon_manager.botrunner import contract, credentials, ledger_store, store
from gordon_manager.botrunner.bar_loop import BlockedEntry
from gordon_manager.botrunner.book import ms_to_dt
from gordon_manager.botrunner.commit import Commit, statement, write
from gordon_manager.db.connect import connect
from gordon_manager.execution import (
    Bar,
    Decision,
    EquityPoint,
    Fill,
    Liquidity,
    OrderReason,
    OrderType,
    Rejection,
    RoundTrip,
    Side,
)
from tests.botrunner.conftest import START, TOKEN_KEY, create_bot_row

T0 = int(START.timestamp() * 1000)
MIN = 60_000


@pytest.fixture
async def bot(bdb):
    """A bound gordon_bot connection of a new paper bot with a running run: (conn, bot id, run id, admin)."""
    bot_id = await create_bot_row(bdb.admin_url, symbol="CMTUSDT", params={"fast": 2, "slow": 3})
    conn = await connect(bdb.bot_url)
    admin = await connect(bdb.admin_url)
    await credentials.login(conn, bot_id=bot_id, token=credentials.bot_token(TOKEN_KEY, bot_id))
    cfg = await store.load_config(conn, bot_id=bot_id)
    run_id = await store.create_run(conn, cfg=cfg, range_start=START, extra={})
    yield conn, bot_id, run_id, admin
    await conn.close()
    await admin.close()


def put(conn: asyncpg.Connection, bot_id: int, run_id: int, commit: Commit):
    return write(conn, commit, bot_id=bot_id, run_id=run_id, mode="paper", symbol="CMTUSDT",
                 subject=contract.intents_subject(bot_id))


def payload(bot_id: int, coid: str, n: int) -> str:
    return f'{{"botId": {bot_id}, "clientOrderId": "{coid}", "n": {n}}}'


def order_row(coid: str, status: str = "new", filled: str = "0") -> tuple:
    return (coid, "buy", "market", Decimal("0.5"), None, False, None, "signal", None, None, None, START, status,
            Decimal(filled), None)


def fill_row(coid: str, fill_id: str, qty: str = "0.5") -> tuple:
    return (fill_id, coid, "simulated", "buy", Decimal(qty), Decimal(100), Decimal(100) * Decimal(qty),
            Decimal("0.05"), "taker", "signal", START)


def ledger_row(qty: str, last_bar_at=None) -> tuple:
    return (Decimal(qty), Decimal(100), Decimal(950), Decimal("0.05"), Decimal(0),
            [{"clientOrderId": "x", "side": "buy"}], last_bar_at)


async def count(admin: asyncpg.Connection, table: str, bot_id: int) -> int:
    column = "run_id IN (SELECT id FROM trading.runs WHERE bot_id = $1)" if table == "equity_points" else "bot_id = $1"
    value: int = await admin.fetchval(f"SELECT count(*) FROM trading.{table} WHERE {column}", bot_id)
    return value


TABLES = ("equity_points", "bot_decisions", "roundtrips", "bot_orders", "bot_fills", "bot_events", "order_intents",
          "bot_ledgers")


async def test_one_statement_writes_every_table_and_returns_the_new_intents_in_order(bot):
    conn, bot_id, run_id, admin = bot
    coids = [contract.order_id(bot_id, T0 + i * MIN, 0) for i in range(3)]
    commit = Commit(
        equity=[(ms_to_dt(T0 + i * MIN), 1000.0 + i, 950.0, 0.5, 100.0 + i) for i in range(3)],
        decisions=[(ms_to_dt(T0 + i * MIN), "buy", Decimal("0.5"), "market", None, "signal", coids[i]) for i in range(3)],
        trips=[(START, START + timedelta(minutes=2), Decimal(100), Decimal(102), Decimal("0.5"), Decimal(1),
                Decimal("0.1"), Decimal("0.9"), 120.0, "signal")],
        orders={c: order_row(c) for c in coids}, fills=[fill_row(coids[0], "f-1")],
        intents=[(c, "new", payload(bot_id, c, i)) for i, c in enumerate(coids)],
        ledger=ledger_row("0.5", START))
    for i in range(5):
        commit.event(f"e{i}", "info", f"event {i}", {"i": i})
    out = await put(conn, bot_id, run_id, commit)
    assert [o.client_order_id for o in out] == coids  # oldest first
    assert [o.id for o in out] == sorted(o.id for o in out)
    assert out[1].payload == payload(bot_id, coids[1], 1).encode()
    assert out[0].subject == contract.intents_subject(bot_id)
    assert {t: await count(admin, t, bot_id) for t in TABLES} == {
        "equity_points": 3, "bot_decisions": 3, "roundtrips": 1, "bot_orders": 3, "bot_fills": 1, "bot_events": 5,
        "order_intents": 3, "bot_ledgers": 1}
    kinds = [r["kind"] for r in await admin.fetch("SELECT kind FROM trading.bot_events WHERE bot_id = $1 ORDER BY id",
                                                  bot_id)]
    assert kinds == [f"e{i}" for i in range(5)]  # in the order they happened
    assert await admin.fetchval("SELECT data FROM trading.bot_events WHERE bot_id = $1 AND kind = 'e3'",
                                bot_id) == {"i": 3}
    decision = await admin.fetchrow("SELECT run_id, side, qty, client_order_id FROM trading.bot_decisions"
                                    " WHERE bot_id = $1 ORDER BY bar_at LIMIT 1", bot_id)
    assert tuple(decision) == (run_id, "buy", Decimal("0.5"), coids[0])
    ledger = await admin.fetchrow("SELECT qty, cash, trip, run_id, last_bar_at, mode, symbol FROM trading.bot_ledgers"
                                  " WHERE bot_id = $1", bot_id)
    assert tuple(ledger) == (Decimal("0.5"), Decimal(950), [{"clientOrderId": "x", "side": "buy"}], run_id, START,
                             "paper", "CMTUSDT")

    # the same intents again (a decision replayed after a restart): not new, nothing returned, one row each
    again = Commit(intents=[(c, "new", payload(bot_id, c, 9)) for c in coids], published=[out[0].id],
                   orders={coids[0]: order_row(coids[0], "filled", "0.5")}, ledger=ledger_row("0.25"))
    assert await put(conn, bot_id, run_id, again) == []
    assert await count(admin, "order_intents", bot_id) == 3
    assert [o.client_order_id for o in await ledger_store.unpublished(conn, bot_id=bot_id)] == coids[1:]
    assert await admin.fetchval("SELECT attempts FROM trading.order_intents WHERE id = $1", out[0].id) == 1
    order = await admin.fetchrow("SELECT status, filled_qty FROM trading.bot_orders WHERE client_order_id = $1",
                                 coids[0])
    assert tuple(order) == ("filled", Decimal("0.5"))
    # the ledger upsert: the new state, and a missing last bar keeps the recorded one
    assert tuple(await admin.fetchrow("SELECT qty, last_bar_at FROM trading.bot_ledgers WHERE bot_id = $1",
                                      bot_id)) == (Decimal("0.25"), START)


async def test_a_failing_row_writes_nothing_of_the_commit(bot):
    """One statement, one transaction: a bad row anywhere leaves every table as it was."""
    conn, bot_id, run_id, admin = bot
    coid = contract.order_id(bot_id, T0, 0)
    before = {t: await count(admin, t, bot_id) for t in TABLES}
    bad = Commit(equity=[(START, 1000.0, 1000.0, 0.0, 100.0)],
                 decisions=[(START, "buy", Decimal("0.5"), "market", None, "signal", coid)],
                 orders={coid: order_row(coid)}, intents=[(coid, "new", payload(bot_id, coid, 0))], ledger=ledger_row("0.5"),
                 fills=[fill_row(coid, "f-bad", qty="-1")])  # qty > 0 is a CHECK of bot_fills
    bad.event("fill", "info", "x", {})
    with pytest.raises(asyncpg.CheckViolationError):
        await put(conn, bot_id, run_id, bad)
    assert {t: await count(admin, t, bot_id) for t in TABLES} == before
    # inside an open transaction it is one statement of it: rolled back with it
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await put(conn, bot_id, run_id, Commit(decisions=[(START, "buy", Decimal(1), "market", None, "signal",
                                                               None)]))
            raise RuntimeError("the run's start failed")
    assert {t: await count(admin, t, bot_id) for t in TABLES} == before


async def test_an_empty_commit_sends_nothing_and_a_fill_is_booked_once(bot):
    conn, bot_id, run_id, admin = bot
    assert not Commit()
    assert await put(conn, bot_id, run_id, Commit()) == []
    coid = contract.order_id(bot_id, T0, 0)
    await put(conn, bot_id, run_id, Commit(orders={coid: order_row(coid)}, fills=[fill_row(coid, "f-7")]))
    assert await ledger_store.booked_fills(conn, bot_id=bot_id, fill_ids=["f-7", "f-8"]) == {"f-7"}
    # the same fill id again (a report redelivered after its commit): ON CONFLICT, one row
    await put(conn, bot_id, run_id, Commit(fills=[fill_row(coid, "f-7")]))
    assert await count(admin, "bot_fills", bot_id) == 1
    assert await count(admin, "bot_ledgers", bot_id) == 0  # no ledger given, no ledger row


async def test_the_rows_of_a_bar_batch_and_of_the_book(bot):
    """``Commit.bars`` / ``happened`` / ``changes``: what the runner hands it becomes these rows."""
    conn, bot_id, run_id, admin = bot
    coid = contract.order_id(bot_id, T0, 0)
    bar = Bar(T0, 100.0, 101.0, 99.0, 100.5, 10.0)
    fill = Fill(1, T0, Side.BUY, OrderType.MARKET, OrderReason.ENTRY, Decimal("0.5"), Decimal("100.5"),
                Decimal("50.25"), Decimal("0.05"), Liquidity.TAKER)
    items = [EquityPoint(T0, 1000.0), Decision(T0, Side.BUY, Decimal("0.5"), OrderType.MARKET, None,
                                               OrderReason.ENTRY, 1), fill,
             Rejection(2, T0, "insufficient cash"), BlockedEntry(T0, "risk_halt:global"),
             RoundTrip(T0 - MIN, T0, Decimal(100), Decimal("100.5"), Decimal("0.5"), Decimal("0.25"),
                       Decimal("0.1"), Decimal("0.15"), MIN, OrderReason.EXIT)]
    commit = Commit()
    commit.bars([(bar, items, 949.75, 0.5)], {1: coid}.get)
    assert await put(conn, bot_id, run_id, commit) == []
    point = await admin.fetchrow("SELECT equity, cash, position_qty, price FROM trading.equity_points"
                                 " WHERE run_id = $1", run_id)
    assert tuple(point) == (1000.0, 949.75, 0.5, 100.5)
    assert await admin.fetchval("SELECT client_order_id FROM trading.bot_decisions WHERE run_id = $1", run_id) == coid
    trip = await admin.fetchrow("SELECT net_pnl, duration_s, exit_reason, side, symbol FROM trading.roundtrips"
                                " WHERE run_id = $1", run_id)
    assert tuple(trip) == (Decimal("0.15"), 60.0, "exit", "long", "CMTUSDT")
    events = await admin.fetch("SELECT kind, level, data FROM trading.bot_events WHERE run_id = $1 ORDER BY id", run_id)
    assert [(e["kind"], e["level"]) for e in events] == [("fill", "info"), ("order_rejected", "warning"),
                                                         ("entry_blocked", "warning")]
    assert events[0]["data"]["clientOrderId"] == coid and events[0]["data"]["price"] == "100.5"
    assert events[2]["data"]["reason"] == "risk_halt:global"


def test_a_commit_names_only_the_tables_it_writes():
    """An INSERT of no rows still fires its table's statement triggers (equity_points has three): a fill's
    commit must not name equity_points, nor a bar's roundtrips; unused parameters are not numbered."""
    coid = "gb1-1-0"
    fill = Commit(orders={coid: order_row(coid, "filled", "0.5")}, fills=[fill_row(coid, "f-1")],
                  ledger=ledger_row("0.5"))
    fill.event("fill", "info", "x", {})
    sql, names = statement(fill.tables())
    assert fill.tables() == ("orders", "fills", "ledger", "events")
    assert "bot_fills" in sql and "bot_ledgers" in sql and "equity_points" not in sql and "roundtrips" not in sql
    assert "order_intents" not in sql and "subject" not in names
    assert names[:2] == ("bot_id", "run_id") and len(names) == len(set(names))
    assert {int(n) for n in re.findall(r"\$(\d+)::", sql)} == set(range(1, len(names) + 1))
    bar = Commit(equity=[(START, 1000.0, 1000.0, 0.0, 100.0)], intents=[(coid, "new", "{}")], published=[3])
    sql, names = statement(bar.tables())
    assert bar.tables() == ("published", "equity", "intents")
    assert "roundtrips" not in sql and "bot_fills" not in sql and "bot_ledgers" not in sql
    assert "ORDER BY id" in sql
    marks = Commit(published=[1, 2])
    assert statement(marks.tables()) == (statement(("published",))[0], ("published",))
    assert "WHERE false" in statement(marks.tables())[0]  # no intents: no rows back
    assert statement(bar.tables()) is statement(bar.tables())  # one text per shape (asyncpg prepares it once)
