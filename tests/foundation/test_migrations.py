"""Migrations: in order, exactly once, under an advisory lock, even from two processes at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from gordon_manager.db.migrate import latest_version, load_migrations, migrate
from gordon_manager.errors import MigrationError
from tests.conftest import create_database


def test_migrations_are_numbered_uniquely_in_order():
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
    assert latest_version() == versions[-1]


async def test_two_processes_migrating_at_once_apply_each_migration_once(pg_server_url):
    db = await create_database(pg_server_url, migrated=False)
    env = {**os.environ, "GORDON_DATABASE_ADMIN_URL": db.admin_url, "GORDON_MANAGER_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "gordon_manager.cli", "migrate"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    stdout = sorted(out for out, _ in outputs)
    assert any(out.startswith(f"applied {len(load_migrations())} migration(s)") for out in stdout)
    assert sum(out.startswith("applied") for out in stdout) == 1
    assert sum(out.startswith("database is up to date") for out in stdout) == 2
    conn = await asyncpg.connect(db.admin_url)
    try:
        rows = await conn.fetch("SELECT version, count(*) OVER (PARTITION BY version) AS n FROM trading.schema_migrations")
    finally:
        await conn.close()
    assert sorted(r["version"] for r in rows) == [m.version for m in load_migrations()]
    assert all(r["n"] == 1 for r in rows)


async def test_concurrent_in_process_migrations(pg_server_url):
    db = await create_database(pg_server_url, migrated=False)
    results = await asyncio.gather(*(migrate(db.admin_url) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations())]


async def test_a_changed_migration_is_refused(pg_server_url):
    db = await create_database(pg_server_url)
    conn = await asyncpg.connect(db.admin_url)
    try:
        await conn.execute("UPDATE trading.schema_migrations SET checksum = 'tampered' WHERE version = 3")
    finally:
        await conn.close()
    with pytest.raises(MigrationError, match="0003_bots changed after it was applied"):
        await migrate(db.admin_url)


async def test_unreachable_database_is_a_clear_error():
    from gordon_manager.errors import DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable, match="127.0.0.1:1"):
        await migrate("postgresql://u@127.0.0.1:1/db", timeout=2)
