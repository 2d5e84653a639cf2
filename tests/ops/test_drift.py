"""Portfolio drift: bots' ledgers versus trading.portfolio_state (real Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gordon_manager.db.connect import create_pool
from gordon_manager.observability import metrics
from gordon_manager.portfolio import drift
from gordon_manager.portfolio.drift import DriftChecker, compare, tolerance


def drift_total() -> float:
    return metrics.REGISTRY.get_sample_value("gordon_manager_portfolio_drift_total") or 0.0


async def start_run(admin, bot, *, kind: str, symbol: str = "BTCUSDT", position: float | None) -> int:
    run_id = await admin.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval)"
        " VALUES ($1, $2, 'running', 'donchian_breakout', $3, '1m') RETURNING id", kind, bot.id, symbol)
    if position is not None:
        await equity(admin, run_id, position)
    return run_id


async def equity(admin, run_id: int, position: float, *, at: datetime | None = None) -> None:
    """The bot books ``position`` in its ledger (what the drift checker compares)."""
    at = at or datetime.now(UTC)
    await admin.execute(
        "INSERT INTO trading.bot_ledgers (bot_id, mode, symbol, qty, cash, run_id, updated_at)"
        " SELECT bot_id, kind, symbol, $2, 1000, id, $3 FROM trading.runs WHERE id = $1"
        " ON CONFLICT (bot_id) DO UPDATE SET qty = EXCLUDED.qty, symbol = EXCLUDED.symbol, run_id = EXCLUDED.run_id,"
        " updated_at = EXCLUDED.updated_at", run_id, position, at)


async def portfolio(admin, bot, qty: float, symbol: str = "BTCUSDT") -> None:
    await admin.execute(
        "INSERT INTO trading.portfolio_state (bot_id, symbol, qty) VALUES ($1, $2, $3)"
        " ON CONFLICT (COALESCE(bot_id, 0), symbol) DO UPDATE SET qty = EXCLUDED.qty, updated_at = now()",
        bot.id, symbol, qty)


async def drift_events(admin, bot) -> list:
    return await admin.fetch("SELECT * FROM trading.bot_events WHERE bot_id = $1 AND kind = 'portfolio_drift'"
                             " ORDER BY id", bot.id)


@pytest.fixture
async def checker(database):
    pool = await create_pool(database.manager_url, min_size=1, max_size=2)
    try:
        yield DriftChecker(pool=pool, interval=60)
    finally:
        await pool.close()


def test_tolerance_rule():
    assert compare({"implied_qty": 1.0, "portfolio_qty": 1.0 + 1e-9, "kind": "live"}) is None
    assert compare({"implied_qty": 1e6, "portfolio_qty": 1e6 + 0.5, "kind": "live"}) is None  # relative
    assert compare({"implied_qty": 1.0, "portfolio_qty": 1.1, "kind": "paper"}) == (1.0, 1.1)
    assert compare({"implied_qty": 0.5, "portfolio_qty": None, "kind": "live"}) == (0.5, 0.0)
    assert compare({"implied_qty": 0.5, "portfolio_qty": None, "kind": "paper"}) is None
    assert compare({"implied_qty": None, "portfolio_qty": 3, "kind": "live"}) is None
    assert tolerance(0, 0) == drift.ABS_TOLERANCE


async def test_confirmed_drift_is_counted_and_reported_once(checker, bots, admin):
    bot = await bots.create(serve_metrics=False)
    run_id = await start_run(admin, bot, kind="paper", position=1.5)
    await portfolio(admin, bot, 1.0)
    before = drift_total()
    await checker.run_once()  # first sighting: not yet confirmed
    assert await drift_events(admin, bot) == []
    await checker.run_once()
    events = await drift_events(admin, bot)
    assert len(events) == 1
    event = events[0]
    assert event["level"] == "warning" and event["run_id"] == run_id
    assert event["data"]["implied_qty"] == 1.5 and event["data"]["portfolio_qty"] == 1.0
    assert event["data"]["symbol"] == "BTCUSDT" and event["data"]["mode"] == "paper"
    assert "1.5" in event["message"] and "1" in event["message"]
    assert drift_total() == before + 1
    await checker.run_once()  # same values: not reported again
    assert len(await drift_events(admin, bot)) == 1
    # The values change: reported again once confirmed.
    await equity(admin, run_id, 2.0, at=datetime.now(UTC) + timedelta(seconds=1))
    await checker.run_once()
    await checker.run_once()
    assert [e["data"]["implied_qty"] for e in await drift_events(admin, bot)] == [1.5, 2.0]
    # Resolved, then back: reported again.
    await portfolio(admin, bot, 2.0)
    await checker.run_once()
    await portfolio(admin, bot, 0.0)
    await checker.run_once()
    await checker.run_once()
    assert len(await drift_events(admin, bot)) == 3
    assert drift_total() == before + 3


async def test_agreement_and_transient_mismatches_are_not_drift(checker, bots, admin):
    bot = await bots.create(serve_metrics=False)
    run_id = await start_run(admin, bot, kind="live", position=0.25)
    await portfolio(admin, bot, 0.25)
    await checker.run_once()
    await checker.run_once()
    # A mismatch seen once and then gone (the executor caught up) is never reported.
    await equity(admin, run_id, 0.5, at=datetime.now(UTC) + timedelta(seconds=1))
    await checker.run_once()
    await portfolio(admin, bot, 0.5)
    await checker.run_once()
    await checker.run_once()
    assert await drift_events(admin, bot) == []


async def test_missing_portfolio_row_is_drift_for_live_only(checker, bots, admin):
    live = await bots.create(serve_metrics=False, mode="live")
    paper = await bots.create(serve_metrics=False)
    await start_run(admin, live, kind="live", position=0.1)
    await start_run(admin, paper, kind="paper", position=0.1)
    shadow = await bots.create(serve_metrics=False, mode="shadow")
    await start_run(admin, shadow, kind="shadow", position=9.0)
    await portfolio(admin, shadow, 0.0)
    no_equity = await bots.create(serve_metrics=False, mode="live")
    await start_run(admin, no_equity, kind="live", position=None)
    await checker.run_once()
    await checker.run_once()
    assert [e["data"]["portfolio_qty"] for e in await drift_events(admin, live)] == [0.0]
    assert await drift_events(admin, paper) == []
    assert await drift_events(admin, shadow) == []
    assert await drift_events(admin, no_equity) == []


async def test_a_replica_that_is_not_the_leader_does_not_report(checker, bots, admin):
    bot = await bots.create(serve_metrics=False)
    await start_run(admin, bot, kind="paper", position=2.5)
    await portfolio(admin, bot, 1.0)
    checker.active = lambda: False
    before = drift_total()
    for _ in range(3):
        await checker.run_once()
    assert await drift_events(admin, bot) == [] and drift_total() == before
    checker.active = lambda: True
    await checker.run_once()
    await checker.run_once()
    assert len(await drift_events(admin, bot)) == 1
