"""Numbered SQL migrations (``NNNN_name.sql``), applied in order, exactly once, under an advisory lock.

Two processes migrating at once serialise on the lock: the second finds everything applied. A file
whose content changed after it was applied is refused (checksum), because the database would no
longer match what the file says.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from gordon_manager.db.connect import connect
from gordon_manager.errors import MigrationError

logger = logging.getLogger(__name__)

# An arbitrary, fixed 64-bit key ("gordonmg") shared by every manager process.
MIGRATION_LOCK_KEY = 0x676F72646F6E6D67
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_HISTORY = """
CREATE SCHEMA IF NOT EXISTS trading;
CREATE TABLE IF NOT EXISTS trading.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@functools.cache
def _packaged() -> tuple[Migration, ...]:
    """The packaged files, read once per process (/healthz and /readyz ask on every probe)."""
    found: list[Migration] = []
    for entry in resources.files("gordon_manager.db").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers: {versions}")
    return tuple(found)


def load_migrations() -> list[Migration]:
    """Every packaged migration, ordered by version."""
    return list(_packaged())


def latest_version() -> int:
    """The highest packaged migration number."""
    return load_migrations()[-1].version


async def applied(conn: asyncpg.Connection) -> dict[int, str]:
    """Applied versions and their checksums ({} when the history table does not exist)."""
    exists = await conn.fetchval("SELECT to_regclass('trading.schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM trading.schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migrate(url: str, *, timeout: float = 5.0) -> list[int]:
    """Apply every pending migration; return the versions applied by this call."""
    conn = await connect(url, timeout=timeout, init=False)
    done: list[int] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_HISTORY)
            history = await applied(conn)
            for migration in load_migrations():
                recorded = history.get(migration.version)
                if recorded is not None:
                    if recorded != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} changed after it was applied"
                        )
                    continue
                await _apply(conn, migration)
                done.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()
    return done


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    logger.info("applying migration", extra={"version": migration.version, "migration": migration.name})
    try:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO trading.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {exc}") from exc


async def pending_versions(conn: asyncpg.Connection) -> list[int]:
    """Packaged versions not yet applied (readiness uses this)."""
    history = await applied(conn)
    return [m.version for m in load_migrations() if m.version not in history]
