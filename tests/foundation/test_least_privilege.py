"""The gordon_manager role: each grant and each refusal, proven by logging in as it."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import Database

READER_VIEWS = ["v_klines_reader", "v_metrics_reader", "v_macro_reader", "v_funding_rates_reader",
                "v_open_interest_reader"]
MARKET_TABLES = ["klines", "metrics", "macro", "funding_rates", "open_interest"]
FOREIGN_TABLES = {  # owned by other services: the manager may read but never write them
    "breaker_state": "INSERT INTO trading.breaker_state (breaker, state) VALUES ('x', 'open')",
    "risk_halt": "INSERT INTO trading.risk_halt (scope, halted) VALUES ('x', true)",
    "portfolio_state": "INSERT INTO trading.portfolio_state (symbol) VALUES ('BTCUSDT')",
    "source_freshness": "INSERT INTO trading.source_freshness (source) VALUES ('x')",
    "backfill_jobs": "INSERT INTO trading.backfill_jobs (source) VALUES ('x')",
    "overlay_decisions": "INSERT INTO trading.overlay_decisions (overlay, decision) VALUES ('x', 'allow')",
    "bot_decisions": "INSERT INTO trading.bot_decisions (bot_id, bar_at, side) VALUES (1, now(), 'buy')",
    "events": "INSERT INTO trading.events (channel, payload) VALUES ('x', '{}')",
    "schema_migrations": "INSERT INTO trading.schema_migrations (version, name, checksum) VALUES (999, 'x', 'x')",
    "market_data.klines": "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high,"
                          " low, close, volume) VALUES ('BTCUSDT', '1m', now(), now(), 1, 1, 1, 1, 1)",
}


@pytest.fixture
async def as_manager(database: Database):
    conn = await asyncpg.connect(database.manager_url)
    assert await conn.fetchval("SELECT current_user") == "gordon_manager"
    yield conn
    await conn.close()


async def test_role_is_not_privileged(as_manager):
    row = await as_manager.fetchrow("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
    assert tuple(row) == (False, False, False)


async def test_writes_the_four_writer_tables(as_manager):
    async with as_manager.transaction():
        bot_id = await as_manager.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by)"
            " VALUES ('lp-bot', 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'test') RETURNING id")
        await as_manager.execute("UPDATE trading.bot_configs SET version = version + 1 WHERE id = $1", bot_id)
        run_id = await as_manager.fetchval(
            "INSERT INTO trading.runs (kind, strategy, symbol, interval) VALUES ('backtest', 's', 'BTCUSDT', '1m')"
            " RETURNING id")
        await as_manager.execute("INSERT INTO trading.equity_points (run_id, ts, equity) VALUES ($1, now(), 1000)",
                                 run_id)
        await as_manager.execute(
            "INSERT INTO trading.bot_deploys (bot_id, from_version, candidate, compare_window, match_threshold,"
            " lease_ttl_s, actor) VALUES ($1, 1, '{}', 10, 0.9, 30, 'test')", bot_id)
        # and the ones the features imply, each named with a reason in migration 0008
        await as_manager.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
        await as_manager.execute(
            "INSERT INTO trading.bot_config_audit (bot_id, actor, action, version) VALUES ($1, 't', 'create', 1)",
            bot_id)
    # outbox retention
    await as_manager.execute("DELETE FROM trading.events WHERE at < now() - interval '100 years'")


@pytest.mark.parametrize("table", ["bot_configs", "bot_status", "bot_config_audit", "bot_deploys", "runs",
                                   "equity_points", "roundtrips", "bot_decisions", "bot_events", "breaker_state",
                                   "risk_halt", "portfolio_state", "source_freshness", "backfill_jobs",
                                   "overlay_decisions", "service_deploys", "deploy_divergences", "events",
                                   "operator_audit", "idempotency_keys", "schema_migrations"])
async def test_reads_every_trading_table(as_manager, table):
    await as_manager.fetchval(f"SELECT count(*) FROM trading.{table}")


async def test_reads_every_table_in_trading_schema_even_new_ones(as_manager, database: Database):
    tables = await as_manager.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'trading'")
    assert len(tables) >= 21
    for row in tables:
        assert await as_manager.fetchval("SELECT has_table_privilege('trading.' || $1, 'SELECT')", row["tablename"])


@pytest.mark.parametrize("view", READER_VIEWS)
async def test_reads_each_reader_view(as_manager, view):
    assert await as_manager.fetchval(f"SELECT count(*) FROM market_data.{view}") >= 0


@pytest.mark.parametrize("table", MARKET_TABLES)
async def test_direct_select_on_market_data_is_refused(as_manager, table):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.fetch(f"SELECT * FROM market_data.{table} LIMIT 1")


@pytest.mark.parametrize("name", sorted(FOREIGN_TABLES))
async def test_writes_to_foreign_tables_are_refused(as_manager, name):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.execute(FOREIGN_TABLES[name])


async def test_cannot_create_objects_or_alter_schema(as_manager):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.execute("CREATE TABLE trading.nope (id int)")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.execute("DROP TABLE trading.bot_configs")


async def test_trigger_writes_outbox_without_granting_it(as_manager):
    """Writes to watched tables reach the outbox through the SECURITY DEFINER trigger."""
    before = await as_manager.fetchval("SELECT coalesce(max(id), 0) FROM trading.events")
    async with as_manager.transaction():
        await as_manager.execute(
            "INSERT INTO trading.runs (kind, strategy, symbol, interval) VALUES ('backtest', 's', 'ETHUSDT', '1h')")
    rows = await as_manager.fetch("SELECT channel, payload FROM trading.events WHERE id > $1", before)
    assert [r["channel"] for r in rows] == ["run_progress"]


@pytest.mark.parametrize("table", ["trading.bot_config_audit", "trading.operator_audit"])
async def test_audit_tables_are_append_only_for_the_manager(as_manager, table):
    for statement in (f"UPDATE {table} SET actor = 'rewritten'", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_manager.execute(statement)
    assert await as_manager.fetchval(f"SELECT count(*) >= 0 FROM {table}") is True
