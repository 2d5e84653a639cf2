"""A stand-in for gordon-executor (a peer that is not ours): it reads the bots' intents from the real
JetStream and answers with reports, as the contract in asyncapi.yaml says.

Market orders fill at the intent's ``refPrice`` (the decision bar's close) after ``latency_s``, in
``parts`` fills; limit and stop orders stay working until the test calls ``trigger``. An OCO
group's other legs are cancelled when one leg fills. ``reject`` decides which new orders are
rejected; ``duplicate_fills`` sends every fill report twice (under two message ids, so JetStream
lets both through and the bot must de-duplicate by fill id). Like the real executor it keeps
``trading.portfolio_state`` per bot, so the manager's drift checker can compare.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import nats
import orjson
from nats.js.api import AckPolicy, DeliverPolicy, StorageType

from gordon_manager.botrunner import contract

FEE_RATE = Decimal("0.001")


@dataclass
class Working:
    intent: dict[str, Any]
    filled: Decimal = Decimal(0)

    @property
    def rest(self) -> Decimal:
        return Decimal(self.intent["qty"]) - self.filled


@dataclass
class TestExecutor:
    url: str
    admin_url: str | None = None
    latency_s: float = 0.0
    parts: int = 1
    reject: Callable[[dict[str, Any]], str | None] = lambda intent: None
    duplicate_fills: bool = False
    durable: str = "test-executor"
    intents: list[dict[str, Any]] = field(default_factory=list)  # every delivery, duplicates included
    received_at: dict[str, float] = field(default_factory=dict)  # clientOrderId -> loop time of first receipt
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # new orders by clientOrderId (first copy)
    working: dict[str, Working] = field(default_factory=dict)
    statuses: Counter = field(default_factory=Counter)
    positions: dict[int, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._nc = None
        self._js = None
        self._task: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._db: asyncpg.Connection | asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self.changed = asyncio.Event()

    async def start(self) -> TestExecutor:
        self._nc = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        self._js = self._nc.jetstream()
        for name, subjects in ((contract.INTENTS_STREAM, contract.INTENTS_SUBJECTS),
                               (contract.REPORTS_STREAM, contract.REPORTS_SUBJECTS)):
            try:
                await self._js.find_stream_name_by_subject(subjects)
            except nats.js.errors.NotFoundError:
                await self._js.add_stream(name=name, subjects=[subjects], storage=StorageType.FILE,
                                          duplicate_window=contract.DEDUP_WINDOW_S)
        try:
            await self._js.consumer_info(contract.INTENTS_STREAM, self.durable)
        except nats.js.errors.NotFoundError:
            await self._js.add_consumer(contract.INTENTS_STREAM, durable_name=self.durable,
                                        filter_subject=contract.INTENTS_SUBJECTS, ack_policy=AckPolicy.EXPLICIT,
                                        deliver_policy=DeliverPolicy.ALL, ack_wait=5)
        self._sub = await self._js.pull_subscribe_bind(durable=self.durable, stream=contract.INTENTS_STREAM)
        if self.admin_url:
            self._db = await self._open_db()
        self._task = asyncio.create_task(self._consume())
        return self

    async def _open_db(self) -> asyncpg.Connection | asyncpg.Pool:
        """What portfolio_state is written through (anything with ``execute`` and ``close``)."""
        return await asyncpg.connect(self.admin_url)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._nc is not None:
            await self._nc.close()
        if self._db is not None:
            await self._db.close()

    # -- what the tests read -------------------------------------------------------------------
    def new_orders(self, bot_id: int) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["botId"] == bot_id]

    def deliveries(self, coid: str) -> int:
        return sum(1 for i in self.intents if i["clientOrderId"] == coid)

    def working_of(self, bot_id: int) -> list[dict[str, Any]]:
        return [w.intent for w in self.working.values() if w.intent["botId"] == bot_id]

    # -- consuming intents -----------------------------------------------------------------------
    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                messages = await self._sub.fetch(batch=1, timeout=0.5)  # see botrunner/bus.py FETCH_BATCH
            except (TimeoutError, nats.errors.Error, OSError):
                continue
            for message in messages:
                intent = orjson.loads(message.data)
                self.intents.append(intent)
                self.received_at.setdefault(intent["clientOrderId"], loop.time())
                await message.ack()
                await self._handle(intent)
            self.changed.set()

    async def _handle(self, intent: dict[str, Any]) -> None:
        coid = intent["clientOrderId"]
        if intent["type"] == "cancel":
            target = self.working.pop(intent["origClientOrderId"], None)
            if target is not None:
                await self._status(target.intent, "cancelled", "cancel requested")
            return
        if coid in self.orders:  # idempotent by clientOrderId, as the contract requires
            return
        self.orders[coid] = intent
        reason = self.reject(intent)
        if reason:
            await self._status(intent, "rejected", reason)
            return
        await self._status(intent, "accepted")
        self.working[coid] = Working(intent)
        if intent["orderType"] == "market":
            asyncio.get_running_loop().call_later(self.latency_s, lambda: asyncio.ensure_future(
                self._fill_market(coid)))

    async def _fill_market(self, coid: str) -> None:
        working = self.working.get(coid)
        if working is None:
            return
        price = Decimal(working.intent.get("refPrice") or "1")
        await self.trigger(coid, price)

    def _lock_for(self, bot_id: int) -> asyncio.Lock:
        """The lock fills of ``bot_id`` are taken under (one for all bots here)."""
        return self._lock

    async def trigger(self, coid: str, price: Decimal, *, qty: Decimal | None = None) -> None:
        """Fill a working order (``qty``: part of it) at ``price``; OCO siblings are cancelled."""
        working = self.working.get(coid)
        if working is None:
            return
        async with self._lock_for(working.intent["botId"]):
            working = self.working.get(coid)
            if working is None:
                return
            total = qty if qty is not None else working.rest
            parts = max(1, self.parts if qty is None else 1)
            step = (total / parts).quantize(Decimal("0.00000001"))
            done = Decimal(0)
            for n in range(parts):
                part = total - done if n == parts - 1 else step
                if part <= 0:
                    continue
                done += part
                await self._fill(working, part, price)
            if working.rest <= 0:
                self.working.pop(coid, None)
            group = working.intent.get("ocoGroup")
            if group:
                for other in [w for c, w in self.working.items() if w.intent.get("ocoGroup") == group and c != coid]:
                    self.working.pop(other.intent["clientOrderId"], None)
                    await self._status(other.intent, "cancelled", "oco")

    async def _fill(self, working: Working, qty: Decimal, price: Decimal) -> None:
        intent = working.intent
        working.filled += qty
        bot_id = intent["botId"]
        side = 1 if intent["side"] == "buy" else -1
        self.positions[bot_id] = self.positions.get(bot_id, Decimal(0)) + side * qty
        fill_id = f"xf{next(self._ids)}"
        report = {"type": "fill", "fillId": fill_id, "clientOrderId": intent["clientOrderId"], "qty": str(qty),
                  "price": str(price), "fee": str((qty * price * FEE_RATE).quantize(Decimal("0.00000001"))),
                  "liquidity": "maker" if intent["orderType"] == "limit" else "taker", "ts": _now()}
        await self._portfolio(bot_id, intent["symbol"])
        await self._publish(bot_id, report, fill_id)
        if self.duplicate_fills:
            await self._publish(bot_id, report, f"{fill_id}-again")

    async def _status(self, intent: dict[str, Any], status: str, reason: str | None = None) -> None:
        self.statuses[status] += 1
        report = {"type": "status", "clientOrderId": intent["clientOrderId"], "status": status, "reason": reason,
                  "ts": _now()}
        await self._publish(intent["botId"], report, f"{intent['clientOrderId']}:{status}")

    async def _publish(self, bot_id: int, report: dict[str, Any], msg_id: str) -> None:
        for _ in range(50):  # NATS may be restarting under the test: retry like a real peer would
            try:
                await self._js.publish(contract.reports_subject(bot_id), orjson.dumps(report),
                                       headers={"Nats-Msg-Id": msg_id}, timeout=2)
                return
            except (TimeoutError, nats.errors.Error, OSError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"test executor could not publish {report}")

    async def _portfolio(self, bot_id: int, symbol: str) -> None:
        if self._db is None:
            return
        await self._db.execute(
            "INSERT INTO trading.portfolio_state (bot_id, symbol, qty) VALUES ($1, $2, $3)"
            " ON CONFLICT (COALESCE(bot_id, 0), symbol) DO UPDATE SET qty = EXCLUDED.qty, updated_at = now()",
            bot_id, symbol, self.positions[bot_id])


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
