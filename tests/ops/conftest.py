"""Fixtures of the ops-integration tests: a real Prometheus + AlertManager for the session, bots
rows with a real /metrics endpoint, a gordon-risk stand-in, and apps wired to them."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from gordon_manager.app import create_app
from gordon_manager.db.connect import init_connection
from gordon_manager.settings import PeerSettings
from tests.conftest import Database, make_settings
from tests.ops.peers import BotMetrics, FakeRisk, PromStack, start_prom_stack

RISK_FORWARD_TOKEN = "risk-forward-token-9876543210"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs root, Debian dockerd and haproxy (ci/install-system-deps.sh)")


@pytest.fixture(scope="session")
def prom_stack() -> Iterator[PromStack]:
    """Debian prometheus (deploy example config, 1s intervals, file-SD) + alertmanager, once per session."""
    root = Path(tempfile.mkdtemp(prefix="gm-ops-prom-"))
    stack = start_prom_stack(root)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def fake_risk() -> Iterator[FakeRisk]:
    """gordon-risk stand-in that answers 401 unless the manager forwards RISK_FORWARD_TOKEN."""
    risk = FakeRisk(token=RISK_FORWARD_TOKEN)
    risk.start()
    try:
        yield risk
    finally:
        risk.close()


@pytest.fixture
async def admin(database: Database) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the session database (plays the other services' writes)."""
    conn = await asyncpg.connect(database.admin_url)
    await init_connection(conn)  # jsonb as Python values, like the service's pool
    try:
        yield conn
    finally:
        await conn.close()


@dataclass
class TestBot:
    """A bot row (config + status) and, optionally, its real /metrics endpoint."""

    id: int
    name: str
    port: int
    metrics: BotMetrics | None


class BotFactory:
    """Inserts bots the way the bots API and the reconciler would leave them; cleans them up."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.bots: list[TestBot] = []

    async def create(self, *, mode: str = "paper", symbol: str = "BTCUSDT", observed: str = "running",
                     serve_metrics: bool = True, metrics: tuple[str, ...] | None = None) -> TestBot:
        name = f"ops-{uuid.uuid4().hex[:10]}"
        served = BotMetrics(**({"metrics": metrics} if metrics is not None else {})) if serve_metrics else None
        port = served.port if served else 1
        bot_id = await self.conn.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, mode, image, desired_state, created_by)"
            " VALUES ($1, 'donchian_breakout', $2, '1m', $3, 'gordon-bot:test', 'running', 'ops-test') RETURNING id",
            name, symbol, mode)
        await self.conn.execute(
            "INSERT INTO trading.bot_status (bot_id, observed_state, runtime, workload_id, metrics_port)"
            " VALUES ($1, $2, 'process', $3, $4)", bot_id, observed, f"test-{bot_id}", port)
        bot = TestBot(id=bot_id, name=name, port=port, metrics=served)
        self.bots.append(bot)
        return bot

    async def set_state(self, bot: TestBot, observed: str) -> None:
        await self.conn.execute("UPDATE trading.bot_status SET observed_state = $2 WHERE bot_id = $1", bot.id, observed)

    async def close(self) -> None:
        for bot in self.bots:
            if bot.metrics is not None:
                bot.metrics.close()
        ids = [b.id for b in self.bots]
        # Leave nothing "running" behind for later tests: stop the runs, drop the portfolio rows,
        # soft-delete the bots (no reconciler of a later test may try to run these rows).
        await self.conn.execute("UPDATE trading.runs SET status = 'stopped' WHERE bot_id = ANY($1)"
                                " AND status = 'running'", ids)
        await self.conn.execute("DELETE FROM trading.portfolio_state WHERE bot_id = ANY($1)", ids)
        await self.conn.execute("UPDATE trading.bot_status SET observed_state = 'removed' WHERE bot_id = ANY($1)", ids)
        await self.conn.execute("UPDATE trading.bot_configs SET desired_state = 'stopped', deleted_at = now()"
                                " WHERE id = ANY($1)", ids)


@pytest.fixture
async def bots(admin: asyncpg.Connection) -> AsyncIterator[BotFactory]:
    factory = BotFactory(admin)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
def ops_app(database: Database, data_dir: Path):
    """Factory: an app (lifespan running, reconciler off) with peer overrides, and a client on it."""

    @contextlib.asynccontextmanager
    async def make(*, peers: dict[str, str | None] | None = None, **overrides) -> AsyncIterator[tuple]:
        values = {"reconcile_enabled": False, "stack_health_interval_s": 3600.0, "http_timeout_s": 2.0, **overrides}
        settings = make_settings(database, data_dir, gordon_manager=PeerSettings(**(peers or {})), **values)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
                yield app, client

    return make


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a peer that is down)."""
    from tests.infra.net import free_port

    return f"http://127.0.0.1:{free_port()}"
