"""SQL of a bot's live state: its orders, fills, ledger and the outbox of intents for the executor.

Everything a batch of bars or an executor report changed is written by ``write_changes`` inside the
caller's transaction, so orders, fills, intents, ledger and decisions always commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from gordon_manager.botrunner.book import Changes, OrderRecord, ms_to_dt
from gordon_manager.botrunner.store import INSERT_EVENT

SELECT_LEDGER = """
SELECT mode, symbol, qty, avg_entry_price, cash, fees_paid, realized_pnl, trip, run_id, last_bar_at
  FROM trading.bot_ledgers WHERE bot_id = $1
"""

SELECT_OPEN_ORDERS = """
SELECT client_order_id, side, order_type, qty, price, reduce_only, oco_group, reason, stop_loss, take_profit,
       parent_id, bar_at, status, filled_qty, status_reason
  FROM trading.bot_orders
 WHERE bot_id = $1 AND status IN ('new', 'accepted', 'partially_filled', 'cancelling')
 ORDER BY created_at, client_order_id
"""

SELECT_ORDER = """
SELECT client_order_id, stop_loss, take_profit FROM trading.bot_orders WHERE client_order_id = $1 AND bot_id = $2
"""

# Bracket generations already used for an entry (a re-armed bracket takes the next one).
SELECT_GENERATIONS = "SELECT count(DISTINCT oco_group) FROM trading.bot_orders WHERE parent_id = $1 AND bot_id = $2"

UPSERT_ORDER = """
INSERT INTO trading.bot_orders (client_order_id, bot_id, run_id, mode, symbol, side, order_type, qty, price,
                                reduce_only, oco_group, reason, stop_loss, take_profit, parent_id, bar_at, status,
                                filled_qty, status_reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (client_order_id) DO UPDATE
   SET status = EXCLUDED.status, filled_qty = EXCLUDED.filled_qty, status_reason = EXCLUDED.status_reason,
       updated_at = now()
 WHERE trading.bot_orders.bot_id = EXCLUDED.bot_id
"""

INSERT_FILL = """
INSERT INTO trading.bot_fills (bot_id, fill_id, client_order_id, run_id, source, side, qty, price, notional, fee,
                               liquidity, reason, ts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (bot_id, fill_id) DO NOTHING
"""

# The executor's fill id is the idempotency key: a redelivered report inserts nothing.
CLAIM_FILL = "SELECT NOT EXISTS (SELECT 1 FROM trading.bot_fills WHERE bot_id = $1 AND fill_id = $2)"

INSERT_INTENT = """
INSERT INTO trading.order_intents (bot_id, client_order_id, kind, subject, payload)
VALUES ($1, $2, $3, $4, $5::text::jsonb)
ON CONFLICT (client_order_id) DO NOTHING
RETURNING id
"""

SELECT_UNPUBLISHED = """
SELECT id, client_order_id, subject, payload::text AS payload FROM trading.order_intents
 WHERE bot_id = $1 AND published_at IS NULL ORDER BY id
"""

MARK_PUBLISHED = """
UPDATE trading.order_intents SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])
"""

UPSERT_LEDGER = """
INSERT INTO trading.bot_ledgers (bot_id, mode, symbol, qty, avg_entry_price, cash, fees_paid, realized_pnl, trip,
                                 run_id, last_bar_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (bot_id) DO UPDATE
   SET mode = EXCLUDED.mode, symbol = EXCLUDED.symbol, qty = EXCLUDED.qty, avg_entry_price = EXCLUDED.avg_entry_price,
       cash = EXCLUDED.cash, fees_paid = EXCLUDED.fees_paid, realized_pnl = EXCLUDED.realized_pnl,
       trip = EXCLUDED.trip, run_id = EXCLUDED.run_id,
       last_bar_at = coalesce(EXCLUDED.last_bar_at, trading.bot_ledgers.last_bar_at), updated_at = now()
"""



@dataclass
class Recovered:
    """What a starting bot continues from (a fresh bot: flat, ``initial_cash``, nothing open)."""

    qty: Decimal
    cash: Decimal
    fees_paid: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    trip: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    entry: dict[str, Any] | None = None  # the open round trip's entry order (its bracket levels)
    generations: dict[str, int] = field(default_factory=dict)
    last_bar_at: datetime | None = None
    mode: str | None = None
    symbol: str | None = None
    found: bool = False

    @property
    def holds_anything(self) -> bool:
        return self.qty != 0 or bool(self.orders)

    def snapshot(self) -> dict[str, Any]:
        """JSON of what the run opened with (runs.config.opening): a shadow bot starts from it."""
        return {"qty": format(self.qty, "f"), "cash": format(self.cash, "f"), "feesPaid": format(self.fees_paid, "f"),
                "realizedPnl": format(self.realized_pnl, "f"), "trip": self.trip,
                "orders": [_json_row(o) for o in self.orders], "entry": _json_row(self.entry) if self.entry else None}

    def renamed(self, old: str, new: str) -> Recovered:
        """The same state under another bot's client order ids (prefix ``old`` becomes ``new``)."""
        def swap(value: Any) -> Any:
            return value.replace(old, new, 1) if isinstance(value, str) and value.startswith(old) else value

        keys = ("client_order_id", "parent_id", "oco_group", "clientOrderId")
        def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: swap(v) if k in keys else v for k, v in item.items()} for item in items]

        return Recovered(qty=self.qty, cash=self.cash, fees_paid=self.fees_paid, realized_pnl=self.realized_pnl,
                         trip=rows(self.trip), orders=rows(self.orders),
                         entry=rows([self.entry])[0] if self.entry else None, found=self.found)

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Recovered:
        return cls(qty=Decimal(data["qty"]), cash=Decimal(data["cash"]), fees_paid=Decimal(data["feesPaid"]),
                   realized_pnl=Decimal(data["realizedPnl"]), trip=list(data["trip"]), orders=list(data["orders"]),
                   entry=data.get("entry"), found=True)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, datetime):
            key, value = "bar_ts", int(value.timestamp() * 1000)
        out[key] = value
    return out


async def recover(conn: asyncpg.Connection, *, bot_id: int, initial_cash: Decimal) -> Recovered:
    """The bot's recorded ledger and open orders (flat with ``initial_cash`` if it never traded)."""
    ledger = await conn.fetchrow(SELECT_LEDGER, bot_id)
    orders = [dict(r) for r in await conn.fetch(SELECT_OPEN_ORDERS, bot_id)]
    if ledger is None:
        return Recovered(qty=Decimal(0), cash=initial_cash, orders=orders)
    trip = list(ledger["trip"] or [])
    entry = None
    generations: dict[str, int] = {}
    first_buy = next((f for f in trip if f["side"] == "buy"), None)
    if first_buy is not None:
        row = await conn.fetchrow(SELECT_ORDER, first_buy["clientOrderId"], bot_id)
        if row is not None:
            entry = dict(row)
            generations[row["client_order_id"]] = await conn.fetchval(SELECT_GENERATIONS, row["client_order_id"],
                                                                       bot_id)
    return Recovered(qty=ledger["qty"], cash=ledger["cash"], fees_paid=ledger["fees_paid"],
                     realized_pnl=ledger["realized_pnl"], trip=trip, orders=orders, entry=entry,
                     generations=generations, last_bar_at=ledger["last_bar_at"], mode=ledger["mode"],
                     symbol=ledger["symbol"], found=True)


async def claim_fill(conn: asyncpg.Connection, *, bot_id: int, fill_id: str) -> bool:
    """True when this executor fill id was never booked (call inside the transaction that books it)."""
    value: bool = await conn.fetchval(CLAIM_FILL, bot_id, fill_id)
    return value


@dataclass(frozen=True)
class Outgoing:
    """A committed, unpublished intent."""

    id: int
    client_order_id: str
    subject: str
    payload: bytes


async def write_changes(conn: asyncpg.Connection, *, bot_id: int, run_id: int, mode: str, symbol: str,
                        subject: str, changes: Changes, ledger: dict[str, Any] | None,
                        last_bar_at: datetime | None = None) -> list[Outgoing]:
    """Persist what the book collected (inside the caller's transaction); returns the new intents."""
    if changes.orders:
        seen: dict[str, OrderRecord] = {r.client_order_id: r for r in changes.orders}  # last state wins
        await conn.executemany(UPSERT_ORDER, [_order_args(r, bot_id, run_id, mode, symbol) for r in seen.values()])
    if changes.fills:
        await conn.executemany(INSERT_FILL, [
            (bot_id, f.fill_id, f.client_order_id, run_id, f.source, f.fill.side.value, f.fill.qty, f.fill.price,
             f.fill.notional, f.fill.fee, f.fill.liquidity.value, f.fill.reason.value, ms_to_dt(f.fill.ts))
            for f in changes.fills])
    outgoing: list[Outgoing] = []
    for intent in changes.intents:
        intent_id = await conn.fetchval(INSERT_INTENT, bot_id, intent.client_order_id, intent.kind, subject,
                                        intent.payload.decode())
        if intent_id is not None:
            outgoing.append(Outgoing(intent_id, intent.client_order_id, subject, intent.payload))
    if changes.notes:
        await conn.executemany(INSERT_EVENT, [(bot_id, run_id, kind, level, message, data)
                                              for kind, level, message, data in changes.notes])
    if ledger is not None:
        await conn.execute(UPSERT_LEDGER, bot_id, mode, symbol, ledger["qty"], ledger["avg_entry_price"],
                           ledger["cash"], ledger["fees_paid"], ledger["realized_pnl"], ledger["trip"], run_id,
                           last_bar_at)
    return outgoing


def _order_args(r: OrderRecord, bot_id: int, run_id: int, mode: str, symbol: str) -> tuple[Any, ...]:
    row = r.row()
    return (r.client_order_id, bot_id, run_id, mode, symbol, row["side"], row["order_type"], r.qty, r.price,
            r.reduce_only, r.oco_group, row["reason"], r.stop_loss, r.take_profit, r.parent_id, row["bar_at"],
            r.status, r.filled_qty, r.status_reason)


async def unpublished(conn: asyncpg.Connection, *, bot_id: int) -> list[Outgoing]:
    """Intents committed but never acknowledged by JetStream (a crash or a NATS outage), oldest first."""
    rows = await conn.fetch(SELECT_UNPUBLISHED, bot_id)
    return [Outgoing(r["id"], r["client_order_id"], r["subject"], r["payload"].encode())
            for r in rows]


async def mark_published(conn: asyncpg.Connection, *, ids: list[int]) -> None:
    await conn.execute(MARK_PUBLISHED, ids)
