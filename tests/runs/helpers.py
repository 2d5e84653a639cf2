"""Fixtures and helpers of the console-read tests: a private migrated database (the global reads
must see only what a test wrote), an app and client on it, and an admin connection that writes the
tables the way the other services do (plain SQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import Database, create_database, make_settings

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
async def reads_db(pg_server_url: str) -> Database:
    """A migrated database of the read tests' own."""
    return await create_database(pg_server_url)


@pytest.fixture
async def admin(reads_db: Database) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the read tests' database."""
    conn = await asyncpg.connect(reads_db.admin_url)
    yield conn
    await conn.close()


@pytest.fixture
def reads_settings_overrides() -> dict:
    """Settings a test module wants changed (override the fixture)."""
    return {}


@pytest.fixture
async def reads_app(reads_db: Database, tmp_path: Path, reads_settings_overrides: dict):
    """An app (lifespan running) on the read tests' database."""
    from gordon_manager.app import create_app

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    application = create_app(make_settings(reads_db, data_dir, **reads_settings_overrides))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(reads_app) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the read tests' app."""
    transport = httpx.ASGITransport(app=reads_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


async def make_bot(conn: asyncpg.Connection, *, mode: str = "paper", name: str | None = None) -> int:
    """A bot config row; returns its id."""
    return await conn.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by, mode)"
        " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'test', $2) RETURNING id",
        name or f"bot-{uuid.uuid4().hex[:10]}", mode)


async def make_run(conn: asyncpg.Connection, *, kind: str = "backtest", bot_id: int | None = None,
                   status: str = "done", strategy: str = "sma_crossover", symbol: str = "BTCUSDT",
                   created_at: datetime | None = None, stats: dict | None = None) -> int:
    """A run row; returns its id."""
    return await conn.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, params, config, stats,"
        " created_at, started_at) VALUES ($1, $2, $3, $4, $5, '1m', $6::jsonb, $7::jsonb, $8::jsonb,"
        " coalesce($9, now()), now()) RETURNING id",
        kind, bot_id, status, strategy, symbol, '{"fast_period": 10}', '{"initial_cash": "10000"}',
        None if stats is None else json.dumps(stats), created_at)


async def add_points(conn: asyncpg.Connection, run_id: int, values: list[float], *, start: datetime = T0,
                     step: timedelta = timedelta(minutes=1)) -> list[datetime]:
    """Equity points (one per step) in one COPY; returns their timestamps."""
    stamps = [start + i * step for i in range(len(values))]
    await conn.copy_records_to_table(
        "equity_points", schema_name="trading", columns=["run_id", "ts", "equity", "cash", "position_qty", "price"],
        records=[(run_id, ts, v, v / 2, 0.5, 100.0) for ts, v in zip(stamps, values, strict=True)])
    return stamps


def problem(response: httpx.Response, status: int) -> dict:
    """The problem+json body of a response that must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


async def collect(api: httpx.AsyncClient, url: str, params: dict | None = None, *, max_pages: int = 1000) -> list:
    """Every item of a paginated list, following nextCursor."""
    items, cursor = [], None
    for _ in range(max_pages):
        query = dict(params or {})
        if cursor:
            query["cursor"] = cursor
        response = await api.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("too many pages")
