"""One commit of a bot: every row a batch of bars, an executor report or a stop wrote, in ONE statement.

A live bot's steady state is a bar a second, each decision followed within milliseconds by the
executor's fill. Each of those used to be a transaction of about eight round trips to PostgreSQL
(BEGIN, one statement per table, COMMIT), and with a hundred bots deciding on the same closing
second those round trips were most of the load on the database and of the bots' own CPU.

Here the rows are collected in a ``Commit`` and written by a single statement of data-modifying
CTEs over ``unnest``-ed arrays, one CTE per table the commit writes (``statement``: one SQL text per
set of tables, prepared once per connection). A single statement is atomic on its own (it is its
own transaction when none is open), so it needs no BEGIN or COMMIT: one round trip per bar batch
and per executor report batch, and everything it writes (decision, order, intent, fill, ledger,
events) commits together or not at all, as before. Inside an open transaction (a run's start and
finish) it is just one more statement of it.

Every CTE runs to completion whether or not the main query reads it; all of them see the same
snapshot, which is fine because no two of them touch the same row (orders are de-duplicated by
client order id, last state wins; intents marked published are earlier rows than those inserted).
AFTER triggers (the intent relay's NOTIFY, the bot events' NOTIFY, the equity rollups) fire at the
end of the statement, exactly as for separate statements. Row-level security applies to each CTE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from gordon_manager.botrunner.bar_loop import BlockedEntry
from gordon_manager.botrunner.book import Changes, ms_to_dt
from gordon_manager.execution import Bar, Decision, EquityPoint, Fill, Rejection, RoundTrip
from gordon_manager.http.values import iso_utc, plain_decimal

# One CTE per table, each over its own arrays; a commit's statement holds the CTEs of the tables it
# writes only. An INSERT of no rows still fires the table's statement triggers (equity_points has
# three: row security, run check, rollups — ~0.5 ms of the server's CPU for nothing), so a fill's
# commit must not name equity_points, nor a bar's roundtrips. {name} is a parameter (``_PARAMS``).
_PARTS: dict[str, str] = {
    "published": """
    UPDATE trading.order_intents SET published_at = now(), attempts = attempts + 1
     WHERE id = ANY({published})""",
    "equity": """
    INSERT INTO trading.equity_points (run_id, ts, equity, cash, position_qty, price)
    SELECT {run_id}, * FROM unnest({equity0}, {equity1}, {equity2}, {equity3}, {equity4})""",
    "decisions": """
    INSERT INTO trading.bot_decisions (bot_id, run_id, bar_at, side, qty, order_type, price, reason, client_order_id)
    SELECT {bot_id}, {run_id}, * FROM unnest({decisions0}, {decisions1}, {decisions2}, {decisions3}, {decisions4},
                                         {decisions5}, {decisions6})""",
    "trips": """
    INSERT INTO trading.roundtrips (run_id, bot_id, symbol, side, entry_at, exit_at, entry_price, exit_price, qty,
                                    gross_pnl, fees, net_pnl, duration_s, exit_reason)
    SELECT {run_id}, {bot_id}, {symbol}, 'long', * FROM unnest({trips0}, {trips1}, {trips2}, {trips3}, {trips4},
                                                           {trips5}, {trips6}, {trips7}, {trips8}, {trips9})""",
    "orders": """
    INSERT INTO trading.bot_orders (client_order_id, bot_id, run_id, mode, symbol, side, order_type, qty, price,
                                    reduce_only, oco_group, reason, stop_loss, take_profit, parent_id, bar_at, status,
                                    filled_qty, status_reason)
    SELECT u.coid, {bot_id}, {run_id}, {mode}, {symbol}, u.side, u.order_type, u.qty, u.price, u.reduce_only,
           u.oco_group, u.reason, u.stop_loss, u.take_profit, u.parent_id, u.bar_at, u.status, u.filled_qty,
           u.status_reason
      FROM unnest({orders0}, {orders1}, {orders2}, {orders3}, {orders4}, {orders5}, {orders6}, {orders7}, {orders8},
                  {orders9}, {orders10}, {orders11}, {orders12}, {orders13}, {orders14})
           AS u(coid, side, order_type, qty, price, reduce_only, oco_group, reason, stop_loss, take_profit,
                parent_id, bar_at, status, filled_qty, status_reason)
    ON CONFLICT (client_order_id) DO UPDATE
       SET status = EXCLUDED.status, filled_qty = EXCLUDED.filled_qty, status_reason = EXCLUDED.status_reason,
           updated_at = now()
     WHERE trading.bot_orders.bot_id = EXCLUDED.bot_id""",
    "fills": """
    INSERT INTO trading.bot_fills (bot_id, fill_id, client_order_id, run_id, source, side, qty, price, notional, fee,
                                   liquidity, reason, ts)
    SELECT {bot_id}, u.fill_id, u.coid, {run_id}, u.source, u.side, u.qty, u.price, u.notional, u.fee, u.liquidity,
           u.reason, u.ts
      FROM unnest({fills0}, {fills1}, {fills2}, {fills3}, {fills4}, {fills5}, {fills6}, {fills7}, {fills8}, {fills9},
                  {fills10})
           AS u(fill_id, coid, source, side, qty, price, notional, fee, liquidity, reason, ts)
    ON CONFLICT (bot_id, fill_id) DO NOTHING""",
    "ledger": """
    INSERT INTO trading.bot_ledgers (bot_id, mode, symbol, qty, avg_entry_price, cash, fees_paid, realized_pnl, trip,
                                     run_id, last_bar_at)
    VALUES ({bot_id}, {mode}, {symbol}, {ledger0}, {ledger1}, {ledger2}, {ledger3}, {ledger4}, {ledger5}, {run_id},
            {ledger6})
    ON CONFLICT (bot_id) DO UPDATE
       SET mode = EXCLUDED.mode, symbol = EXCLUDED.symbol, qty = EXCLUDED.qty,
           avg_entry_price = EXCLUDED.avg_entry_price, cash = EXCLUDED.cash, fees_paid = EXCLUDED.fees_paid,
           realized_pnl = EXCLUDED.realized_pnl, trip = EXCLUDED.trip, run_id = EXCLUDED.run_id,
           last_bar_at = coalesce(EXCLUDED.last_bar_at, trading.bot_ledgers.last_bar_at), updated_at = now()""",
    "events": """
    INSERT INTO trading.bot_events (bot_id, run_id, kind, level, message, data)
    SELECT {bot_id}, {run_id}, u.kind, u.level, u.message, u.data::jsonb
      FROM unnest({events0}, {events1}, {events2}, {events3}) WITH ORDINALITY AS u(kind, level, message, data, n)
     ORDER BY u.n""",
    "intents": """
    INSERT INTO trading.order_intents (bot_id, client_order_id, kind, subject, payload)
    SELECT {bot_id}, u.coid, u.kind, {subject}, u.payload::jsonb
      FROM unnest({intents0}, {intents1}, {intents2}) WITH ORDINALITY AS u(coid, kind, payload, n)
     ORDER BY u.n
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING id, client_order_id""",
}

_COLUMN_TYPES: dict[str, list[str]] = {  # each table's columns, in the order of its rows' tuples
    "equity": ["timestamptz[]", "float8[]", "float8[]", "float8[]", "float8[]"],
    "decisions": ["timestamptz[]", "text[]", "numeric[]", "text[]", "numeric[]", "text[]", "text[]"],
    "trips": ["timestamptz[]", "timestamptz[]"] + ["numeric[]"] * 6 + ["float8[]", "text[]"],
    "orders": ["text[]", "text[]", "text[]", "numeric[]", "numeric[]", "boolean[]", "text[]", "text[]", "numeric[]",
               "numeric[]", "text[]", "timestamptz[]", "text[]", "numeric[]", "text[]"],
    "fills": ["text[]", "text[]", "text[]", "text[]", "numeric[]", "numeric[]", "numeric[]", "numeric[]", "text[]",
              "text[]", "timestamptz[]"],
    "ledger": ["numeric"] * 5 + ["jsonb", "timestamptz"],
    "events": ["text[]"] * 4,
    "intents": ["text[]"] * 3,
}
_PARAMS: dict[str, str] = {"bot_id": "bigint", "run_id": "bigint", "mode": "text", "symbol": "text",
                           "subject": "text", "published": "bigint[]",
                           **{f"{table}{i}": kind for table, kinds in _COLUMN_TYPES.items()
                              for i, kind in enumerate(kinds)}}


@functools.lru_cache(maxsize=64)
def statement(tables: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(SQL, its parameters' names in $-order) of a commit writing ``tables`` (names of ``_PARTS``).

    Only the parameters its CTEs use are numbered (PostgreSQL cannot type an unused one). Returns
    the new intents, oldest first; with no intents to write, no rows.
    """
    names: list[str] = []

    class Refs(dict[str, str]):
        def __missing__(self, name: str) -> str:
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}::{_PARAMS[name]}"

    refs = Refs()
    ctes = [f"{table} AS ({_PARTS[table].format_map(refs)}\n)" for table in tables]
    tail = ("SELECT id, client_order_id FROM intents ORDER BY id" if "intents" in tables
            else "SELECT NULL::bigint AS id, NULL::text AS client_order_id WHERE false")
    return "WITH\n" + ",\n".join(ctes) + "\n" + tail, tuple(names)


@dataclass(frozen=True)
class Outgoing:
    """A committed, unpublished intent."""

    id: int
    client_order_id: str
    subject: str
    payload: bytes


@dataclass
class Commit:
    """The rows of one commit, in the order they happened (events keep their order in their table)."""

    published: list[int] = field(default_factory=list)
    equity: list[tuple[Any, ...]] = field(default_factory=list)
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    trips: list[tuple[Any, ...]] = field(default_factory=list)
    orders: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # by client order id: last state wins
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, level, message, data (JSON)
    intents: list[tuple[str, str, str]] = field(default_factory=list)  # client order id, kind, payload (JSON)
    ledger: tuple[Any, ...] | None = None  # qty, avg entry, cash, fees paid, realized pnl, trip, last bar at

    def event(self, kind: str, level: str, message: str, data: dict[str, Any]) -> None:
        self.events.append((kind, level, message, orjson.dumps(data).decode()))

    def bars(self, batch: Iterable[tuple[Bar, list[Any], float, float]],
             coid_of: Callable[[int], str | None]) -> None:
        """A batch of bars: each bar's equity point and what happened on it."""
        for bar, items, cash, qty in batch:
            happened = []
            for item in items:
                if type(item) is EquityPoint:
                    self.equity.append((ms_to_dt(item.ts), item.equity, cash, qty, bar.close))
                else:
                    happened.append(item)
            if happened:
                self.happened(happened, coid_of)

    def happened(self, items: Iterable[Any], coid_of: Callable[[int], str | None]) -> None:
        """Decisions, round trips, fills, rejections and blocked entries."""
        for item in items:
            if isinstance(item, Decision):
                self.decisions.append((ms_to_dt(item.ts), item.side.value, item.qty, item.order_type.value,
                                       item.price, item.reason.value, coid_of(item.order_id)))
            elif isinstance(item, RoundTrip):
                self.trips.append((ms_to_dt(item.entry_ts), ms_to_dt(item.exit_ts), item.entry_price,
                                   item.exit_price, item.qty, item.gross_pnl, item.fees, item.net_pnl,
                                   item.duration_ms / 1000.0, item.exit_reason.value))
            elif isinstance(item, Fill):
                self.event("fill", "info", f"{item.side.value} {item.qty:f} @ {item.price:f} ({item.order_type.value})",
                           {"orderId": item.order_id, "clientOrderId": coid_of(item.order_id),
                            "side": item.side.value, "qty": plain_decimal(item.qty),
                            "price": plain_decimal(item.price), "fee": plain_decimal(item.fee),
                            "ts": iso_utc(ms_to_dt(item.ts)), "reason": item.reason.value})
            elif isinstance(item, Rejection):
                self.event("order_rejected", "warning", item.reason,
                           {"orderId": item.order_id, "clientOrderId": coid_of(item.order_id),
                            "ts": iso_utc(ms_to_dt(item.ts))})
            elif isinstance(item, BlockedEntry):
                self.event("entry_blocked", "warning", f"entry blocked ({item.reason})",
                           {"reason": item.reason, "barAt": iso_utc(ms_to_dt(item.ts))})

    def changes(self, changes: Changes, *, ledger: dict[str, Any] | None, last_bar_at: datetime | None) -> None:
        """What the order book collected: orders, fills, intents, notes, and the ledger row when it changed."""
        for r in changes.orders:
            row = r.row()
            self.orders[r.client_order_id] = (
                r.client_order_id, row["side"], row["order_type"], r.qty, r.price, r.reduce_only, r.oco_group,
                row["reason"], r.stop_loss, r.take_profit, r.parent_id, row["bar_at"], r.status, r.filled_qty,
                r.status_reason)
        for f in changes.fills:
            self.fills.append((f.fill_id, f.client_order_id, f.source, f.fill.side.value, f.fill.qty, f.fill.price,
                               f.fill.notional, f.fill.fee, f.fill.liquidity.value, f.fill.reason.value,
                               ms_to_dt(f.fill.ts)))
        for intent in changes.intents:
            self.intents.append((intent.client_order_id, intent.kind, intent.payload.decode()))
        for kind, level, message, data in changes.notes:
            self.event(kind, level, message, data)
        if ledger is not None:
            self.ledger = (ledger["qty"], ledger["avg_entry_price"], ledger["cash"], ledger["fees_paid"],
                           ledger["realized_pnl"], ledger["trip"], last_bar_at)

    def _rows(self) -> dict[str, Any]:
        """Each table's rows (published: the ids; ledger: its one row or None), in ``_PARTS``' order."""
        return {"published": self.published, "equity": self.equity, "decisions": self.decisions, "trips": self.trips,
                "orders": self.orders, "fills": self.fills, "ledger": self.ledger, "events": self.events,
                "intents": self.intents}

    def tables(self) -> tuple[str, ...]:
        """The tables this commit writes."""
        return tuple(table for table, rows in self._rows().items() if rows)

    def __bool__(self) -> bool:
        return bool(self.tables())

    def values(self) -> dict[str, Any]:
        """The values of the parameters of each table this commit writes, by name (``_PARAMS``): its
        columns as arrays (``{table}{i}``), the ledger's one row as scalars, ``published`` the ids."""
        values: dict[str, Any] = {}
        for table, rows in self._rows().items():
            if not rows:
                continue
            if table == "published":
                values[table] = rows
            elif table == "ledger":
                values.update((f"ledger{i}", value) for i, value in enumerate(rows))
            else:
                tuples = rows.values() if table == "orders" else rows
                values.update((f"{table}{i}", list(column)) for i, column in enumerate(zip(*tuples, strict=True)))
        return values


async def write(conn: asyncpg.Connection, commit: Commit, *, bot_id: int, run_id: int | None, mode: str,
                symbol: str, subject: str) -> list[Outgoing]:
    """Write the commit in one statement (nothing when it is empty); returns the new intents, oldest first."""
    tables = commit.tables()
    if not tables:
        return []
    sql, names = statement(tables)
    values = {"bot_id": bot_id, "run_id": run_id, "mode": mode, "symbol": symbol, "subject": subject,
              **commit.values()}
    rows = await conn.fetch(sql, *(values[name] for name in names))
    payloads = {coid: payload for coid, _kind, payload in commit.intents}
    return [Outgoing(r["id"], r["client_order_id"], subject, payloads[r["client_order_id"]].encode()) for r in rows]
