"""SQL of the reconciler: one query loads every bot with its status; writes touch changed rows only."""

from __future__ import annotations

from typing import Any

import asyncpg

from gordon_manager.bots.repo import INSERT_BOT_EVENT

# One round trip for the whole fleet (no per-bot queries): a pass over 10k idle bots is one query.
LOAD_FLEET = """
SELECT c.id, c.name, c.strategy, c.symbol, c.interval, c.mode, c.image, c.desired_state, c.spec_version,
       c.delete_requested_at, c.shadow_of, c.labels,
       s.bot_id IS NOT NULL AS has_status,
       coalesce(s.observed_state, 'pending') AS observed_state, s.workload_id, s.observed_version,
       coalesce(s.restarts, 0) AS restarts, coalesce(s.failure_times, '{}') AS failure_times,
       coalesce(s.backoff_s, 0) AS backoff_s, s.next_retry_at, s.running_since,
       coalesce(s.quarantined, false) AS quarantined, s.quarantine_reason, s.quarantined_at,
       s.last_error, s.last_error_at, s.metrics_port, s.metrics_host, s.runtime
  FROM trading.bot_configs c LEFT JOIN trading.bot_status s ON s.bot_id = c.id
 WHERE c.deleted_at IS NULL
"""

STATUS_COLUMNS = ("observed_state", "workload_id", "observed_version", "restarts", "failure_times", "backoff_s",
                  "next_retry_at", "running_since", "quarantined", "quarantine_reason", "quarantined_at",
                  "last_error", "last_error_at", "metrics_port", "metrics_host", "runtime")

UPSERT_STATUS = f"""
INSERT INTO trading.bot_status (bot_id, {", ".join(STATUS_COLUMNS)}, updated_at)
VALUES ($1, {", ".join(f"${i + 2}" for i in range(len(STATUS_COLUMNS)))}, now())
ON CONFLICT (bot_id) DO UPDATE SET {", ".join(f"{c} = EXCLUDED.{c}" for c in STATUS_COLUMNS)}, updated_at = now()
"""

SOFT_DELETE = "UPDATE trading.bot_configs SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL"



async def load_fleet(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every live bot with its status."""
    rows: list[asyncpg.Record] = await conn.fetch(LOAD_FLEET)
    return rows


async def write_statuses(conn: asyncpg.Connection, *, rows: list[dict[str, Any]]) -> None:
    """Upsert full status rows (callers pass only bots whose status changed)."""
    if rows:
        await conn.executemany(UPSERT_STATUS, [(r["bot_id"], *(r[c] for c in STATUS_COLUMNS)) for r in rows])


async def soft_delete(conn: asyncpg.Connection, *, bot_id: int) -> None:
    await conn.execute(SOFT_DELETE, bot_id)


async def insert_events(conn: asyncpg.Connection, *, events: list[tuple[int, str, str, str, dict[str, Any]]]) -> None:
    if events:
        await conn.executemany(INSERT_BOT_EVENT, events)
