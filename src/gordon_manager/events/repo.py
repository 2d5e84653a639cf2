"""SQL of the events domain: the outbox (trading.events) and the breaker snapshot. Repos never commit."""

from __future__ import annotations

from typing import Any

import asyncpg

MAX_ID = "SELECT COALESCE(max(id), 0) FROM trading.events"

# What still exists: the oldest retained id, and the identity's last issued value (NULL before the
# first event). A client's `since` below the oldest retained id - 1 means rows it needs were pruned.
BOUNDS = """
SELECT (SELECT min(id) FROM trading.events) AS oldest,
       pg_sequence_last_value(pg_get_serial_sequence('trading.events', 'id')::regclass) AS newest
"""

# At most $4 rows, and rows only while the running size of the payloads before them stays within
# $5 bytes (so the one row that crosses the cap is returned, and shows the caller the cap was hit):
# a resume never loads more than the cap (plus one row) into the manager.
REPLAY_FOR_CLIENT = """
SELECT id, channel, payload, running FROM (
    SELECT id, channel, payload, size, sum(size) OVER (ORDER BY id) AS running FROM (
        SELECT id, channel, payload, octet_length(payload::text) AS size FROM trading.events
        WHERE channel = ANY($1::text[]) AND (id > $2 OR id = ANY($3::bigint[]))
        ORDER BY id LIMIT $4) AS page) AS sized
WHERE running - size <= $5
ORDER BY id
"""

REPLAY_AFTER = "SELECT id, channel, payload FROM trading.events WHERE id > $1 ORDER BY id LIMIT $2"
REPLAY_IDS = "SELECT id, channel, payload FROM trading.events WHERE id = ANY($1::bigint[]) ORDER BY id"
EVENT_BY_ID = "SELECT id, channel, payload FROM trading.events WHERE id = $1"

PRUNE = """
DELETE FROM trading.events WHERE id IN (
    SELECT id FROM trading.events WHERE at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)
"""

BREAKER_SNAPSHOT = """
SELECT breaker, state, reason, tripped_at, data, updated_at FROM trading.breaker_state ORDER BY breaker
"""


async def max_event_id(conn: asyncpg.Connection) -> int:
    """Highest outbox id (0 when empty)."""
    return int(await conn.fetchval(MAX_ID))


async def outbox_bounds(conn: asyncpg.Connection) -> tuple[int | None, int | None]:
    """(oldest retained id, last issued id)."""
    row = await conn.fetchrow(BOUNDS)
    return row["oldest"], row["newest"]


async def replay_for_client(conn: asyncpg.Connection, *, channels: list[str], since: int, extra_ids: list[int],
                            limit: int, max_bytes: int) -> list[asyncpg.Record]:
    """Events of ``channels`` after ``since`` (plus ``extra_ids``), in id order, up to ``limit`` rows and
    ``max_bytes`` of payload; each row's ``running`` total above ``max_bytes`` means the cap was hit."""
    return await conn.fetch(REPLAY_FOR_CLIENT, channels, since, extra_ids, limit, max_bytes)


async def events_after(conn: asyncpg.Connection, *, after: int, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(REPLAY_AFTER, after, limit)


async def events_by_ids(conn: asyncpg.Connection, *, ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(REPLAY_IDS, ids)


async def event_by_id(conn: asyncpg.Connection, *, event_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(EVENT_BY_ID, event_id)


async def prune_events(conn: asyncpg.Connection, *, older_than_s: float, batch: int) -> int:
    """Delete up to ``batch`` outbox rows older than the retention; returns how many."""
    status = await conn.execute(PRUNE, older_than_s, batch)
    return int(status.split()[-1])


async def breaker_snapshot(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Every breaker's current state (trading.breaker_state)."""
    return [dict(row) for row in await conn.fetch(BREAKER_SNAPSHOT)]
