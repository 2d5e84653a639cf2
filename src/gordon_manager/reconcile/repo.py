"""SQL of the reconciler: one query loads every bot with its status; writes touch changed rows only.

The reconciler is the writer of the status columns (``STATUS_COLUMNS``); each write carries the row's
``generation`` as the pass read it and is dropped when another write (the operator's clear-quarantine)
came in between: the bot is then reconciled again from the row as it is now.
"""

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
       s.last_error, s.last_error_at, s.metrics_port, s.metrics_host, s.runtime,
       coalesce(s.generation, 0) AS generation
  FROM trading.bot_configs c LEFT JOIN trading.bot_status s ON s.bot_id = c.id
 WHERE c.deleted_at IS NULL
"""

STATUS_COLUMNS = ("observed_state", "workload_id", "observed_version", "restarts", "failure_times", "backoff_s",
                  "next_retry_at", "running_since", "quarantined", "quarantine_reason", "quarantined_at",
                  "last_error", "last_error_at", "metrics_port", "metrics_host", "runtime")

INSERT_STATUS = "INSERT INTO trading.bot_status (bot_id) SELECT unnest($1::bigint[]) ON CONFLICT (bot_id) DO NOTHING"

# Locks the rows about to be written (in the writing transaction) and tells their generation.
LOCK_GENERATIONS = "SELECT bot_id, generation FROM trading.bot_status WHERE bot_id = ANY($1::bigint[]) FOR UPDATE"

UPDATE_STATUS = f"""
UPDATE trading.bot_status SET {", ".join(f"{c} = ${i + 2}" for i, c in enumerate(STATUS_COLUMNS))},
       generation = generation + 1, updated_at = now()
 WHERE bot_id = $1
"""

SOFT_DELETE = "UPDATE trading.bot_configs SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL"



async def load_fleet(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every live bot with its status."""
    rows: list[asyncpg.Record] = await conn.fetch(LOAD_FLEET)
    return rows


async def write_statuses(conn: asyncpg.Connection, *, rows: list[dict[str, Any]]) -> set[int]:
    """Write full status rows whose generation is still the one read (call inside a transaction).

    Each row carries ``bot_id``, ``generation`` (as read) and every status column. Returns the bot ids
    written; a row whose generation moved on meanwhile is not written.
    """
    if not rows:
        return set()
    ids = [r["bot_id"] for r in rows]
    await conn.execute(INSERT_STATUS, ids)  # a bot with no status row yet gets one (generation 0)
    current = {r["bot_id"]: r["generation"] for r in await conn.fetch(LOCK_GENERATIONS, ids)}
    fresh = [r for r in rows if current.get(r["bot_id"]) == r["generation"]]
    if fresh:
        await conn.executemany(UPDATE_STATUS, [(r["bot_id"], *(r[c] for c in STATUS_COLUMNS)) for r in fresh])
    return {r["bot_id"] for r in fresh}


async def soft_delete(conn: asyncpg.Connection, *, bot_id: int) -> None:
    await conn.execute(SOFT_DELETE, bot_id)


async def insert_events(conn: asyncpg.Connection, *, events: list[tuple[int, str, str, str, dict[str, Any]]]) -> None:
    if events:
        await conn.executemany(INSERT_BOT_EVENT, events)
