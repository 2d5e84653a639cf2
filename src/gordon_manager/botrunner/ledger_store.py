"""SQL of a bot's live state as it reads it back: its ledger and open orders at start, the fills it
booked, and the outbox of intents not yet published.

Everything a batch of bars or an executor report changed is written by ``commit`` in one statement,
so orders, fills, intents, ledger and decisions always commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from gordon_manager.botrunner.commit import Outgoing

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

# The executor's fill id is the idempotency key: which of a batch's fills are booked already.
SELECT_BOOKED = "SELECT fill_id FROM trading.bot_fills WHERE bot_id = $1 AND fill_id = ANY($2::text[])"

SELECT_UNPUBLISHED = """
SELECT id, client_order_id, subject, payload::text AS payload FROM trading.order_intents
 WHERE bot_id = $1 AND published_at IS NULL ORDER BY id
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


async def booked_fills(conn: asyncpg.Connection, *, bot_id: int, fill_ids: list[str]) -> set[str]:
    """Which of these executor fill ids are booked already (a redelivered or repeated report)."""
    return {r["fill_id"] for r in await conn.fetch(SELECT_BOOKED, bot_id, fill_ids)}


async def unpublished(conn: asyncpg.Connection, *, bot_id: int) -> list[Outgoing]:
    """Intents committed but never acknowledged by JetStream (a crash or a NATS outage), oldest first."""
    rows = await conn.fetch(SELECT_UNPUBLISHED, bot_id)
    return [Outgoing(r["id"], r["client_order_id"], r["subject"], r["payload"].encode())
            for r in rows]
