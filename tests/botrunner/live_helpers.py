"""Shared pieces of the live-loop tests: a NATS JetStream server, the test executor, a manager with the
reconciler on (process runtime, real `gordon-manager bot` processes), and bars shaped to make a
Donchian bot enter and exit when the test wants."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from gordon_manager.db.connect import connect, create_pool
from gordon_manager.portfolio.drift import DriftChecker
from gordon_manager.portfolio.repo import POSITIONS
from tests.conftest import TEST_OPERATOR_TOKEN, make_settings, wait_for
from tests.reconcile.conftest import running_app

HEADERS = {"X-Operator-Token": TEST_OPERATOR_TOKEN}
T0 = datetime(2024, 3, 1, tzinfo=UTC)
# Entry on a close above the previous 3 highs, exit on a close below the previous 3 lows; the bracket
# (stop 5% below, target 10% above the entry bar's close) stays working unless the executor fills it.
DONCHIAN = {"entryPeriod": 3, "exitPeriod": 3, "stopPct": 0.05, "takeProfitPct": 0.1}
# The process runtime passes bots a minimal environment; `env` sets the test's poll interval, and the
# coverage configuration when the suite runs under coverage, so these bots are measured too.
_COVERAGE = os.environ.get("COVERAGE_PROCESS_CONFIG")


def bot_command(poll_s: float = 0.1) -> str:
    return (f"env GORDON_BOT_POLL_S={poll_s} GORDON_BOT_FLATTEN_WAIT_S=5 "
            + (f"COVERAGE_PROCESS_CONFIG={shlex.quote(_COVERAGE)} " if _COVERAGE else "")
            + f"{sys.executable} -m gordon_manager.cli bot")


def live_settings(db, data_dir, nats_url: str, *, poll_s: float = 0.1, **overrides):
    values = dict(reconcile_enabled=True, reconcile_interval_s=0.5, bus_nats_url=nats_url,
                  bot_command=bot_command(poll_s),
                  backoff_base_s=0.3, backoff_max_s=1.0, quarantine_failures=5, quarantine_window_s=60)
    values.update(overrides)
    return make_settings(db, data_dir, **values)


class Bars:
    """Closed 1m bars of one symbol, written as the data pipeline would."""

    def __init__(self, admin_url: str, symbol: str | None = None) -> None:
        self.admin_url = admin_url
        self.symbol = symbol or "L" + uuid.uuid4().hex[:8].upper()
        self.next_at = T0

    async def add(self, *closes: float, spread: float = 0.5) -> datetime:
        """One bar per close: open = close, high/low = close ± spread; returns the last bar's open time."""
        records = []
        for close in closes:
            at = self.next_at
            records.append((self.symbol, "1m", at, at + timedelta(minutes=1) - timedelta(milliseconds=1),
                            close, close + spread, close - spread, close, 10.0))
            self.next_at = at + timedelta(minutes=1)
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.copy_records_to_table("klines", schema_name="market_data", records=records,
                                             columns=["symbol", "interval", "open_time", "close_time", "open", "high",
                                                      "low", "close", "volume"])
        finally:
            await conn.close()
        return records[-1][2]

    async def flat(self, n: int, level: float) -> datetime:
        return await self.add(*([level] * n))


class Db:
    """Admin-side reads of what bots committed."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    async def fetch(self, query: str, *args):
        conn = await connect(self.admin_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def val(self, query: str, *args):
        rows = await self.fetch(query, *args)
        return rows[0][0] if rows else None

    async def ledger(self, bot_id: int):
        rows = await self.fetch("SELECT * FROM trading.bot_ledgers WHERE bot_id = $1", bot_id)
        return rows[0] if rows else None

    async def qty(self, bot_id: int):
        row = await self.ledger(bot_id)
        return row["qty"] if row else None

    async def running_run(self, bot_id: int):
        rows = await self.fetch("SELECT * FROM trading.runs WHERE bot_id = $1 AND status = 'running'"
                                " ORDER BY id DESC LIMIT 1", bot_id)
        return rows[0] if rows else None

    async def open_orders(self, bot_id: int) -> list[str]:
        rows = await self.fetch("SELECT client_order_id FROM trading.bot_orders WHERE bot_id = $1 AND status IN"
                                " ('new', 'accepted', 'partially_filled', 'cancelling') ORDER BY client_order_id",
                                bot_id)
        return [r[0] for r in rows]

    async def events(self, bot_id: int, kind: str):
        return await self.fetch("SELECT * FROM trading.bot_events WHERE bot_id = $1 AND kind = $2 ORDER BY id",
                                bot_id, kind)

    async def decisions(self, bot_id: int):
        return await self.fetch("SELECT * FROM trading.bot_decisions WHERE bot_id = $1 ORDER BY id", bot_id)


async def create_live_bot(client, symbol: str, *, mode: str = "live", params: dict | None = None,
                          strategy: str = "donchian_breakout", execution: dict | None = None) -> int:
    body = {"name": f"live-{uuid.uuid4().hex[:8]}", "strategy": strategy, "symbol": symbol, "interval": "1m",
            "params": params or DONCHIAN, "mode": mode, "desiredState": "running",
            "execution": execution or {"initialCash": "10000", "takerFeeBps": "10", "slippageBps": "0"}}
    response = await client.post("/bots", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def bot_json(client, bot_id: int) -> dict:
    response = await client.get(f"/bots/{bot_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def trading(db: Db, bot_id: int, *, other_than: int | None = None, timeout: float = 20):
    """The bot's running run once it exists (and is not ``other_than``) and has warmed up."""
    async def check():
        run = await db.running_run(bot_id)
        return run if run is not None and run["id"] != other_than and run["config"].get("tradeFrom") else None

    return await wait_for(check, timeout=timeout)


async def no_drift(db) -> None:
    """Two passes of the manager's drift checker (a drift must be seen twice to count) report nothing,
    and it did compare: the executor's portfolio row agrees with each live bot's ledger."""
    pool = await create_pool(db.manager_url, min_size=1, max_size=2)
    try:
        checker = DriftChecker(pool=pool, interval=60)
        async with pool.acquire() as conn:
            before = await conn.fetchval("SELECT count(*) FROM trading.bot_events WHERE kind = 'portfolio_drift'")
            compared = await conn.fetch(POSITIONS)
        await checker.run_once()
        await checker.run_once()
        async with pool.acquire() as conn:
            after = await conn.fetchval("SELECT count(*) FROM trading.bot_events WHERE kind = 'portfolio_drift'")
    finally:
        await pool.close()
    assert after == before, "the drift checker reported drift"
    assert all(r["implied_qty"] == (r["portfolio_qty"] or 0) for r in compared if r["kind"] == "live")


@contextlib.asynccontextmanager
async def live_bot(database, data_dir, nats_url: str, *, mode: str = "live", executor: dict | None = None,
                   poll_s: float = 0.1):
    """Six flat bars, a test executor (``executor``: its options; none for a paper bot), a manager
    with the reconciler on, and a running bot that has warmed up: (db, bars, executor, client,
    bot_id, run)."""
    db, bars = Db(database.admin_url), Bars(database.admin_url)
    await bars.flat(6, 100.0)
    async with contextlib.AsyncExitStack() as stack:
        peer = None
        if mode == "live":
            peer = await stack.enter_async_context(
                executor_running(url=nats_url, admin_url=database.admin_url, **(executor or {})))
        _app, client = await stack.enter_async_context(running_app(live_settings(database, data_dir, nats_url,
                                                                              poll_s=poll_s)))
        bot_id = await create_live_bot(client, bars.symbol, mode=mode)
        yield db, bars, peer, client, bot_id, await trading(db, bot_id)


@contextlib.asynccontextmanager
async def executor_running(**kwargs):
    from tests.botrunner.executor import TestExecutor

    executor = await TestExecutor(**kwargs).start()
    try:
        yield executor
    finally:
        await executor.stop()
