"""OrderBook: a bot's orders by clientOrderId around its ExecutionModel (pure, no IO).

The model knows orders by small process-local ids; the world (the executor, the database, a
restarted bot) knows them by deterministic client order ids (``contract``). The book keeps both
sides in step and collects what the next transaction must write: order rows, fills, intents for
the executor (live) and bot events.

* Paper and shadow bots: the model simulates fills (``after_bar`` records them); orders and fills
  are written so a restarted bot recovers them.
* Live bots: the model never simulates; ``apply_fill`` / ``apply_status`` book the executor's
  reports. Every order the model submits becomes a ``new`` intent; every order that leaves the
  model without the executor having ended it (OCO sibling, reduce-only order once flat, an exit or
  a stop cancelling the bracket) becomes a ``cancel`` intent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from gordon_manager.botrunner import contract
from gordon_manager.execution import (
    Bar,
    Decision,
    ExecutionModel,
    Fill,
    Liquidity,
    Order,
    OrderReason,
    OrderType,
    Rejection,
    RoundTrip,
    Side,
)
from gordon_manager.execution.money import CTX, ZERO, dec

WORKING = frozenset({"new", "accepted", "partially_filled"})
AT_EXECUTOR = WORKING | {"cancelling"}  # may still fill
TERMINAL = frozenset({"filled", "cancelled", "rejected", "expired"})
KEEP_RECORDS = 2000  # finished orders kept in memory (a late duplicate report of one is then recognised)

Note = tuple[str, str, str, dict[str, Any]]  # (kind, level, message, data) of a bot event


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def dt_to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class OrderRecord:
    """One order as the world knows it; ``order`` is the model's view while it may still fill."""

    client_order_id: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    reason: OrderReason
    oco_group: str | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    parent_id: str | None = None
    bar_ts: int | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    status_reason: str | None = None
    order: Order | None = None

    def row(self) -> dict[str, Any]:
        """Columns of trading.bot_orders (JSON-friendly: the run's opening snapshot uses it too)."""
        return {"client_order_id": self.client_order_id, "side": self.side.value,
                "order_type": self.order_type.value, "qty": self.qty, "price": self.price,
                "reduce_only": self.reduce_only, "oco_group": self.oco_group, "reason": self.reason.value,
                "stop_loss": self.stop_loss, "take_profit": self.take_profit, "parent_id": self.parent_id,
                "bar_at": ms_to_dt(self.bar_ts) if self.bar_ts is not None else None, "status": self.status,
                "filled_qty": self.filled_qty, "status_reason": self.status_reason}


@dataclass(frozen=True)
class FillRow:
    """A fill for trading.bot_fills."""

    fill_id: str
    client_order_id: str
    source: Literal["executor", "simulated"]
    fill: Fill


@dataclass(frozen=True)
class Intent:
    """An outbox row: one message for the executor."""

    client_order_id: str
    kind: Literal["new", "cancel"]
    payload: bytes


@dataclass
class Changes:
    """What one transaction must write."""

    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[FillRow] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.intents or self.notes)


def fill_json(fill: Fill, client_order_id: str) -> dict[str, Any]:
    """A fill of the open round trip as the ledger row stores it."""
    return {"clientOrderId": client_order_id, "ts": fill.ts, "side": fill.side.value,
            "orderType": fill.order_type.value, "reason": fill.reason.value, "qty": format(fill.qty, "f"),
            "price": format(fill.price, "f"), "notional": format(fill.notional, "f"), "fee": format(fill.fee, "f"),
            "liquidity": fill.liquidity.value}


def fill_from_json(data: dict[str, Any]) -> Fill:
    return Fill(-1, int(data["ts"]), Side(data["side"]), OrderType(data["orderType"]), OrderReason(data["reason"]),
                Decimal(data["qty"]), Decimal(data["price"]), Decimal(data["notional"]), Decimal(data["fee"]),
                Liquidity(data["liquidity"]))


class OrderBook:
    """Client order ids <-> model orders, and the writes they imply."""

    def __init__(self, *, bot_id: int, symbol: str, mode: str, model: ExecutionModel,
                 on_placed: Callable[[Side], None] = lambda side: None) -> None:
        self.bot_id = bot_id
        self._on_placed = on_placed  # each order placed (paper: simulated; live: a new-order intent)
        self.symbol = symbol
        self.live = mode == "live"
        self.model = model
        # The orders the model submits, until registered (the model appends while it is set).
        self._journal: list[Order] = []
        model.journal = self._journal
        self.run_id: int | None = None
        self.records: dict[str, OrderRecord] = {}
        self._by_model: dict[int, str] = {}  # model order id -> client order id (every id ever seen)
        self._groups: dict[int, str] = {}  # model OCO group -> our group name
        self._group_parent: dict[int, tuple[str, int]] = {}  # model OCO group -> (entry id, generation)
        self._next_generation: dict[str, int] = {}  # entry id -> next bracket generation
        self._trip_ids: list[str] = []  # client order ids of the open round trip's fills
        self._seq: dict[int, int] = {}  # bar ts -> orders decided at that bar so far
        self.realized_pnl = ZERO
        self._cancel_reason = "bracket"  # why the orders dropped during the current bar are cancelled
        self.ledger_changed = True  # a fill was booked since the ledger row was last taken
        self._pending = Changes()

    # -- reading ------------------------------------------------------------------------------
    def coid_of(self, model_id: int) -> str | None:
        return self._by_model.get(model_id)

    @property
    def open_records(self) -> list[OrderRecord]:
        """Orders that may still fill, oldest first."""
        return [r for r in self.records.values() if r.status in AT_EXECUTOR]

    def ledger(self) -> dict[str, Any]:
        """The ledger row: position, cash, fees, average entry and the open round trip's fills."""
        model = self.model
        return {"qty": model.position, "avg_entry_price": model.average_entry, "cash": model.cash,
                "fees_paid": model.fees_paid, "realized_pnl": self.realized_pnl,
                "trip": [fill_json(f, coid) for f, coid in zip(model.open_trip, self._trip_ids, strict=False)]}

    def take(self) -> Changes:
        """The pending writes (and forget them: the caller commits them or the process dies)."""
        changes, self._pending = self._pending, Changes()
        if len(self.records) > KEEP_RECORDS:  # a long-running bot: forget the oldest finished orders
            finished = [c for c, r in self.records.items() if r.status in TERMINAL]
            for coid in finished[: len(self.records) - KEEP_RECORDS]:
                del self.records[coid]
        return changes

    def note(self, kind: str, message: str, *, level: str = "info", **data: Any) -> None:
        self._pending.notes.append((kind, level, message, data))

    # -- recovery -----------------------------------------------------------------------------
    def restore(self, *, orders: list[dict[str, Any]], trip_ids: list[str], generations: dict[str, int],
                realized_pnl: Decimal, persist: bool = False) -> None:
        """Put recorded orders back: working ones into the model, ``cancelling`` ones aside.

        Call after ``model.restore``. ``persist`` writes them as this bot's orders (a shadow bot
        inheriting its live bot's opening orders under its own ids).
        """
        self._trip_ids = list(trip_ids)
        self._next_generation.update(generations)
        self.realized_pnl = realized_pnl
        groups: dict[str, int] = {}
        for row in orders:
            coid = row["client_order_id"]
            parent = row.get("parent_id")
            oco = row.get("oco_group")
            rec = OrderRecord(
                client_order_id=coid, side=Side(row["side"]), order_type=OrderType(row["order_type"]),
                qty=Decimal(row["qty"]), price=_dec(row.get("price")), reduce_only=bool(row["reduce_only"]),
                reason=OrderReason(row["reason"]), oco_group=oco, stop_loss=_dec(row.get("stop_loss")),
                take_profit=_dec(row.get("take_profit")), parent_id=parent,
                bar_ts=dt_to_ms(row["bar_at"]) if isinstance(row.get("bar_at"), datetime) else row.get("bar_ts"),
                status=row["status"], filled_qty=Decimal(row.get("filled_qty") or 0),
                status_reason=row.get("status_reason"))
            self.records[coid] = rec
            if rec.status not in WORKING:
                # asked to cancel before the restart: not working here, but a late fill still books
                rec.order = Order(-len(self.records), rec.side, rec.order_type, rec.qty, 0, 0, rec.price, rec.reason,
                                  rec.reduce_only)
                continue
            group = None
            if oco is not None:
                group = groups.get(oco)
                if group is None:
                    group = groups[oco] = self.model.new_group()
                    self._groups[group] = oco
            rest = CTX.subtract(rec.qty, rec.filled_qty)
            order = self.model.submit(side=rec.side, order_type=rec.order_type, qty=rest, ts=0, price=rec.price,
                                      reason=rec.reason, reduce_only=rec.reduce_only, stop_loss=rec.stop_loss,
                                      take_profit=rec.take_profit, active_from=0, oco_group=group)
            if rec.filled_qty > ZERO:
                self.model.mark_filled(order.id, rec.filled_qty)
            rec.order = order
            self._by_model[order.id] = coid
        self._journal.clear()  # registered above, under their recorded ids
        if persist:
            self._pending.orders.extend(self.records.values())

    def rearm(self, *, entry: dict[str, Any] | None, ts: int) -> bool:
        """Re-place the bracket of a recovered position that has none working (a stop cancelled it)."""
        model = self.model
        if entry is None or model.position <= ZERO or any(o.reduce_only for o in model.open_orders):
            return False
        stop_loss, take_profit = _dec(entry.get("stop_loss")), _dec(entry.get("take_profit"))
        if stop_loss is None and take_profit is None:
            return False
        parent = entry["client_order_id"]
        legs = model.protect(qty=model.position, ts=ts, stop_loss=stop_loss, take_profit=take_profit)
        generation = self._next_generation.get(parent, 0)
        self._next_generation[parent] = generation + 1
        group = legs[0].oco_group
        assert group is not None  # protect() puts its legs in one OCO group
        self._group_parent[group] = (parent, generation)
        self.sync(ts)
        self.note("bracket_rearmed", f"bracket re-armed for {model.position}",
                  stopLoss=_str(stop_loss), takeProfit=_str(take_profit), entry=parent)
        return True

    # -- paper / shadow: what the model simulated on a bar -----------------------------------------
    def after_bar(self, bar: Bar, events: list[Any]) -> None:
        """Record the bar's simulated fills and rejections, then sync new and vanished orders."""
        mark = len(self._pending.intents)
        self._register_new(bar.ts, bar.close)  # first: a bracket may be submitted and filled in this bar
        for item in events:
            kind = type(item)
            if kind is Fill:
                coid = self._by_model[item.order_id]
                rec = self.records[coid]
                rec.filled_qty = CTX.add(rec.filled_qty, item.qty)
                rec.status = "filled"
                rec.order = None
                self._pending.orders.append(rec)
                self._pending.fills.append(FillRow(f"sim-{coid}", coid, "simulated", item))
                self._booked(coid)
            elif kind is Rejection:
                coid = self._by_model[item.order_id]
                rec = self.records[coid]
                rec.status, rec.status_reason, rec.order = "rejected", item.reason, None
                self._pending.orders.append(rec)
            elif kind is RoundTrip:
                self.realized_pnl = CTX.add(self.realized_pnl, item.net_pnl)
        reason, self._cancel_reason = self._cancel_reason, "bracket"
        self._pending.intents[mark:mark] = self._drop_vanished(reason)

    def _booked(self, coid: str) -> None:
        """Track the open round trip's fills (their ids go into the ledger row)."""
        self.ledger_changed = True
        if self.model.position == ZERO:
            self._trip_ids = []
        else:
            self._trip_ids.append(coid)

    def on_decision(self, decision: Decision) -> None:
        """An exit cancels the bracket it replaces, in the same transaction as the exit itself."""
        if decision.reason is OrderReason.EXIT:
            for order in self.model.open_orders:
                if order.reduce_only and order.id != decision.order_id:
                    self.model.cancel(order.id)
                    self._cancel_reason = "exit"

    # -- live: the executor's reports --------------------------------------------------------------
    def apply_fill(self, report: contract.FillReport) -> list[Any]:
        """Book an executor fill (the caller made sure its fill id is new); returns the model's events."""
        rec = self.records.get(report.client_order_id)
        if rec is None or rec.order is None:
            self.note("unknown_order_report", f"fill {report.fill_id} for unknown order {report.client_order_id}",
                      level="error", fillId=report.fill_id, clientOrderId=report.client_order_id)
            return []
        model = self.model
        ts = dt_to_ms(report.ts)
        fill = model.external_fill(rec.order, qty=report.qty, price=report.price, fee=report.fee, ts=ts,
                                   liquidity=Liquidity(report.liquidity) if report.liquidity else None)
        rec.filled_qty = CTX.add(rec.filled_qty, fill.qty)
        done = rec.filled_qty >= rec.qty
        events = model.apply_fill(rec.order, fill, done=done)
        if done:
            rec.status, rec.order = "filled", None
        elif rec.status in WORKING:
            rec.status = "partially_filled"
        self._pending.orders.append(rec)
        self._pending.fills.append(FillRow(report.fill_id, rec.client_order_id, "executor", fill))
        self._booked(rec.client_order_id)
        for item in events:
            if type(item) is RoundTrip:
                self.realized_pnl = CTX.add(self.realized_pnl, item.net_pnl)
        if model.position < ZERO:
            self.note("oversold", f"fills sold {-model.position} more than the position held", level="error",
                      clientOrderId=rec.client_order_id)
        self.sync(ts)
        return events

    def apply_status(self, report: contract.StatusReport) -> None:
        """accepted / rejected / cancelled / expired: the order's state at the executor."""
        rec = self.records.get(report.client_order_id)
        if rec is None:
            # the executor answering one of our cancels (their ids are not orders) is expected
            if not report.client_order_id.endswith("-x"):
                self.note("unknown_order_report", f"{report.status} for unknown order {report.client_order_id}",
                          level="warning", clientOrderId=report.client_order_id, status=report.status)
            return
        ts = dt_to_ms(report.ts)
        if report.status == "accepted":
            if rec.status == "new":
                rec.status = "accepted"
                self._pending.orders.append(rec)
            return
        if rec.status in TERMINAL:
            return
        rec.status, rec.status_reason = report.status, report.reason
        if rec.order is not None and rec.order.id > 0:
            self.model.end_order(rec.order, ts=ts)
        rec.order = None
        self._pending.orders.append(rec)
        level = "warning" if report.status == "rejected" else "info"
        self.note(f"order_{report.status}", f"{rec.client_order_id} {report.status}"
                  + (f": {report.reason}" if report.reason else ""), level=level,
                  clientOrderId=rec.client_order_id, reason=report.reason, side=rec.side.value, qty=_str(rec.qty))
        self.sync(ts)

    # -- lifecycle ----------------------------------------------------------------------------
    def cancel_all(self, *, ts: int, reason: str = "stop") -> int:
        """Cancel every working order (a stop); returns how many."""
        working = list(self.model.open_orders)
        for order in working:
            self.model.cancel(order.id)
        self.sync(ts, cancel_reason=reason)
        return len(working)

    def flatten(self, *, ts: int, config_version: int, ref_price: float | None = None) -> OrderRecord | None:
        """Cancel everything else, then a reduce-only market sell of the whole position.

        A flatten already working for this stop (the bot restarted while flattening) is kept, not
        sent twice; a further attempt for the same stop gets the next id (``…-flat1``).
        """
        model = self.model
        base = contract.flatten_id(self.bot_id, config_version)
        attempts = [r for c, r in self.records.items() if c == base or c.startswith(base) and c[len(base):].isdigit()]
        under_way = next((r for r in attempts if r.status in WORKING and r.order is not None), None)
        if under_way is not None:
            assert under_way.order is not None  # picked for having one
            for order in model.open_orders:
                if order.id != under_way.order.id:
                    model.cancel(order.id)
            self.sync(ts, cancel_reason="flatten")
            return under_way
        self.cancel_all(ts=ts, reason="flatten")
        if model.position <= ZERO:
            return None
        order = model.submit(side=Side.SELL, order_type=OrderType.MARKET, qty=model.position, ts=ts,
                             reason=OrderReason.FLATTEN, reduce_only=True, active_from=ts)
        coid = base if not attempts else f"{base}{len(attempts)}"
        self._register(order, ts, coid=coid, ref_price=ref_price)
        self._journal.clear()
        return self.records[coid]

    # -- keeping the model and the records in step ------------------------------------------------
    def sync(self, ts: int, *, cancel_reason: str = "bracket", ref_price: float | None = None) -> None:
        """Register the orders the model submitted since the last sync and close those it dropped.

        A dropped order's cancel goes out before the new orders of the same step: an exit never
        races the bracket it replaces.
        """
        mark = len(self._pending.intents)
        self._register_new(ts, ref_price)
        self._pending.intents[mark:mark] = self._drop_vanished(cancel_reason)

    def _register_new(self, ts: int, ref_price: float | None) -> None:
        journal = self._journal
        for order in journal:
            if order.id not in self._by_model:
                self._register(order, ts, ref_price=ref_price)
        journal.clear()

    def _drop_vanished(self, reason: str) -> list[Intent]:
        """Orders the model dropped without a fill or an executor's verdict: cancelled (live: asked to)."""
        working = {o.id for o in self.model.open_orders}
        cancels = []
        for rec in self.records.values():
            order = rec.order
            if order is None or order.id <= 0 or order.id in working or rec.status not in WORKING:
                continue
            if self.live:
                rec.status = "cancelling"  # a fill may still come before the cancel lands: keep the order
                cancels.append(self._cancel_intent(rec, reason))
            else:
                rec.status, rec.order = "cancelled", None
            rec.status_reason = reason
            self._pending.orders.append(rec)
        return cancels

    def _register(self, order: Order, ts: int, *, coid: str | None = None, ref_price: float | None = None) -> None:
        parent = oco = None
        if order.oco_group is not None and order.reason in (OrderReason.STOP_LOSS, OrderReason.TAKE_PROFIT):
            parent, generation = self._group_parent.get(order.oco_group) or self._new_group(order.oco_group)
            leg: Literal["sl", "tp"] = "sl" if order.reason is OrderReason.STOP_LOSS else "tp"
            coid = coid or contract.leg_id(parent, leg, generation)
            oco = self._groups.setdefault(order.oco_group, contract.oco_group(parent, generation))
        elif coid is None:
            seq = self._seq.get(order.submitted_ts, 0)
            self._seq = {order.submitted_ts: seq + 1}  # only the current bar's count matters
            coid = contract.order_id(self.bot_id, order.submitted_ts, seq)
        rec = OrderRecord(client_order_id=coid, side=order.side, order_type=order.type, qty=order.qty,
                          price=order.price, reduce_only=order.reduce_only, reason=order.reason, oco_group=oco,
                          stop_loss=order.stop_loss, take_profit=order.take_profit, parent_id=parent,
                          bar_ts=order.submitted_ts if parent is None else None, order=order)
        self.records[coid] = rec
        self._by_model[order.id] = coid
        self._pending.orders.append(rec)
        if self.live:
            self._pending.intents.append(self._new_intent(rec, ref_price))
        self._on_placed(order.side)

    def _new_group(self, group: int) -> tuple[str, int]:
        """A bracket the model attached to a filled entry: its OCO group is the entry's model id."""
        parent = self._by_model[group]
        generation = self._next_generation.get(parent, 0)
        self._next_generation[parent] = generation + 1
        self._group_parent[group] = (parent, generation)
        return parent, generation

    def _new_intent(self, rec: OrderRecord, ref_price: float | None) -> Intent:
        message = contract.NewOrderIntent(
            client_order_id=rec.client_order_id, bot_id=self.bot_id, run_id=self.run_id, symbol=self.symbol,
            side=rec.side.value, order_type=rec.order_type.value, qty=rec.qty, price=rec.price,
            reduce_only=rec.reduce_only, oco_group=rec.oco_group, reason=rec.reason.value,
            bar_at=ms_to_dt(rec.bar_ts) if rec.bar_ts is not None else None,
            ref_price=dec(ref_price) if ref_price is not None else None, created_at=datetime.now(UTC))
        return Intent(rec.client_order_id, "new", message.wire())

    def _cancel_intent(self, rec: OrderRecord, reason: str) -> Intent:
        coid = contract.cancel_id(rec.client_order_id)
        message = contract.CancelIntent(client_order_id=coid, orig_client_order_id=rec.client_order_id,
                                        bot_id=self.bot_id, symbol=self.symbol, reason=reason,
                                        created_at=datetime.now(UTC))
        return Intent(coid, "cancel", message.wire())


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
