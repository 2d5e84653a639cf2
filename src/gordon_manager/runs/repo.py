"""SQL of the runs reads, and the equity points' column list their two writers (the backtest writer,
the bots' store) share. Constants only; filters are composed from constant fragments, values are
always bind parameters. Repos never commit (these are reads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from gordon_manager.db.sql import compose

EQUITY_POINT_COLUMNS = ["run_id", "ts", "equity", "cash", "position_qty", "price"]
"""``trading.equity_points``' columns, in the order its writers send each point's values."""

RUN_COLUMNS = """id, kind, bot_id, status, strategy, params, symbol, interval, range_start, range_end, progress,
    error, cancel_requested, created_by, created_at, started_at, finished_at, heartbeat_at, updated_at"""

GET_RUN = f"SELECT {RUN_COLUMNS}, config, stats FROM trading.runs WHERE id = $1"
RUN_EXISTS = "SELECT 1 FROM trading.runs WHERE id = $1"
# (fragment with one {} for the parameter number, value) — see ``compose``.
RUN_FILTERS = {
    "bot_id": "bot_id = ${}",
    "kind": "kind = ${}",
    "status": "status = ${}",
    "strategy": "strategy = ${}",
    "symbol": "symbol = ${}",
    "created_from": "created_at >= ${}",
    "created_to": "created_at < ${}",
    "before_id": "id < ${}",
}


async def list_runs(conn: asyncpg.Connection, *, limit: int, **filters: Any) -> list[asyncpg.Record]:
    """Runs newest first, filtered (``before_id`` is the keyset position)."""
    sql, args = compose(f"SELECT {RUN_COLUMNS} FROM trading.runs", RUN_FILTERS, {**filters, "limit": limit},
                        "ORDER BY id DESC LIMIT {limit}")
    return await conn.fetch(sql, *args)


async def get_run(conn: asyncpg.Connection, *, run_id: int) -> asyncpg.Record | None:
    """One run with config and stats, or None."""
    return await conn.fetchrow(GET_RUN, run_id)


async def run_exists(conn: asyncpg.Connection, *, run_id: int) -> bool:
    """Whether the run exists."""
    return await conn.fetchval(RUN_EXISTS, run_id) is not None


# -- round trips -----------------------------------------------------------------------------------
ROUNDTRIP_FILTERS = {
    "run_id": "run_id = ${}",
    "side": "side = ${}",
    "exit_from": "exit_at >= ${}",
    "exit_to": "exit_at < ${}",
    "after_id": "id > ${}",
}
ROUNDTRIP_COLUMNS = """id, run_id, bot_id, symbol, side, entry_at, exit_at, entry_price, exit_price, qty, gross_pnl,
    fees, net_pnl, duration_s, exit_reason"""


async def list_roundtrips(conn: asyncpg.Connection, *, limit: int, **filters: Any) -> list[asyncpg.Record]:
    """A run's round trips by id (the order they were recorded), keyset after ``after_id``."""
    sql, args = compose(f"SELECT {ROUNDTRIP_COLUMNS} FROM trading.roundtrips", ROUNDTRIP_FILTERS,
                        {**filters, "limit": limit}, "ORDER BY id LIMIT {limit}")
    return await conn.fetch(sql, *args)


# -- bot events ------------------------------------------------------------------------------------
EVENT_FILTERS = {
    "bot_id": "bot_id = ${}",
    "kind": "kind = ${}",
    "level": "level = ${}",
    "at_from": "at >= ${}",
    "at_to": "at < ${}",
    "before_id": "id < ${}",
}


async def list_bot_events(conn: asyncpg.Connection, *, limit: int, **filters: Any) -> list[asyncpg.Record]:
    """A bot's events newest first (by id), keyset before ``before_id``."""
    sql, args = compose("SELECT id, bot_id, run_id, kind, level, message, data, at FROM trading.bot_events",
                        EVENT_FILTERS, {**filters, "limit": limit}, "ORDER BY id DESC LIMIT {limit}")
    return await conn.fetch(sql, *args)


# -- equity ----------------------------------------------------------------------------------------
# Pages of several requests in one query (runs/batch.py): each request's rows of
# trading.equity_page (migration 0014: whole blocks, then the raw tail), tagged with the request's
# 1-based position. Each column is one bytea of packed big-endian values (the type's own send
# function), so neither side formats or decodes per row; NULL cash/position/price travel as NaN.
# An unknown run and an empty range look alike (no points): the service tells them apart.
EQUITY_PAGES = """
SELECT q.i, p.ts_packed, p.equity_packed, p.cash_packed, p.position_qty_packed, p.price_packed
FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::integer[])
     WITH ORDINALITY AS q(run_id, after_ts, before_ts, lim, i)
CROSS JOIN LATERAL trading.equity_page(q.run_id, q.after_ts, q.before_ts, q.lim)
     WITH ORDINALITY AS p(ts_packed, equity_packed, cash_packed, position_qty_packed, price_packed, k)
ORDER BY q.i, p.k
"""

# Keyset over (ts, run_id) across the bot's runs: each run contributes at most `limit` points.
BOT_EQUITY_PAGE = """
SELECT p.run_id, p.ts, p.equity, p.cash, p.position_qty, p.price
FROM trading.runs r
CROSS JOIN LATERAL (
    SELECT run_id, ts, equity, cash, position_qty, price FROM trading.equity_points e
    WHERE e.run_id = r.id AND e.ts >= $2 AND (e.ts > $2 OR e.run_id > $3) AND e.ts < $4
    ORDER BY e.ts LIMIT $5
) p
WHERE r.bot_id = $1 AND r.kind = ANY($6::text[])
ORDER BY p.ts, p.run_id
LIMIT $5
"""

BOT_RUN_IDS = "SELECT id FROM trading.runs WHERE bot_id = $1 AND kind = ANY($2::text[]) ORDER BY id"

# Day rollups overlapping [from, to): how many points, and the data's first/last time.
EQUITY_EXTENT = """
SELECT coalesce(sum(n), 0)::bigint AS n, min(first_at) AS first_at, max(last_at) AS last_at
FROM trading.equity_rollups
WHERE run_id = $1 AND width_s = 86400 AND bucket_at > $2::timestamptz - interval '1 day' AND bucket_at < $3
"""

EQUITY_SUMMARY = """
SELECT sum(n)::bigint AS points, min(first_at) AS first_at, max(last_at) AS last_at,
       (array_agg(first_equity ORDER BY bucket_at))[1] AS first_equity,
       (array_agg(last_equity ORDER BY bucket_at DESC))[1] AS last_equity,
       min(min_equity) AS min_equity, max(max_equity) AS max_equity
FROM trading.equity_rollups WHERE run_id = $1 AND width_s = 86400
"""

RAW_POINTS = """
SELECT ts, equity, cash, position_qty, price FROM trading.equity_points
WHERE run_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4
"""

# Candidates (epoch seconds, equity) = first/min/max/last of each `width` bucket of the raw points.
RAW_CANDIDATES = """
WITH b AS (
    SELECT count(*) AS n, min(ARRAY[date_part('epoch', ts), equity]) AS f,
           max(ARRAY[date_part('epoch', ts), equity]) AS l,
           min(ARRAY[equity, date_part('epoch', ts)]) AS lo, max(ARRAY[equity, -date_part('epoch', ts)]) AS hi
    FROM trading.equity_points
    WHERE run_id = $1 AND ts >= $2 AND ts < $3
    GROUP BY date_bin($4::interval, ts, $2)
), c AS (
    SELECT f[1] AS t, f[2] AS v FROM b UNION SELECT l[1], l[2] FROM b
    UNION SELECT lo[2], lo[1] FROM b UNION SELECT -hi[2], hi[1] FROM b
)
SELECT coalesce(array_agg(t ORDER BY t), '{}') AS t, coalesce(array_agg(v ORDER BY t), '{}') AS v,
       (SELECT coalesce(sum(n), 0)::bigint FROM b) AS n
FROM c
"""

# The same candidates from the maintained rollups, for buckets wholly inside [from, to).
ROLLUP_CANDIDATES = """
WITH b AS (
    SELECT n, first_at, first_equity, last_at, last_equity, min_at, min_equity, max_at, max_equity
    FROM trading.equity_rollups
    WHERE run_id = $1 AND width_s = $2 AND bucket_at >= $3 AND bucket_at < $4
), c AS (
    SELECT first_at AS t, first_equity AS v FROM b UNION SELECT last_at, last_equity FROM b
    UNION SELECT min_at, min_equity FROM b UNION SELECT max_at, max_equity FROM b
)
SELECT coalesce(array_agg(date_part('epoch', t) ORDER BY t), '{}') AS t,
       coalesce(array_agg(v ORDER BY t), '{}') AS v, (SELECT coalesce(sum(n), 0)::bigint FROM b) AS n
FROM c
"""


async def equity_pages(conn: asyncpg.Connection,
                       requests: Sequence[tuple[int, datetime, datetime, int]]) -> list[list[tuple]]:
    """For each (run_id, after, before, limit), in order, the rows of ``trading.equity_page``."""
    out: list[list[tuple]] = [[] for _ in requests]
    for row in await conn.fetch(EQUITY_PAGES, *(list(column) for column in zip(*requests, strict=True))):
        out[row[0] - 1].append(tuple(row)[1:])
    return out


async def bot_equity_page(conn: asyncpg.Connection, *, bot_id: int, after_ts: datetime, after_run: int,
                          before: datetime, kinds: Sequence[str], limit: int) -> list[asyncpg.Record]:
    """The bot's points after the (ts, run_id) position, in (ts, run_id) order."""
    return await conn.fetch(BOT_EQUITY_PAGE, bot_id, after_ts, after_run, before, limit, list(kinds))


async def bot_run_ids(conn: asyncpg.Connection, *, bot_id: int, kinds: Sequence[str]) -> list[int]:
    """Ids of the bot's runs of the given kinds."""
    return [r["id"] for r in await conn.fetch(BOT_RUN_IDS, bot_id, list(kinds))]


async def equity_extent(conn: asyncpg.Connection, *, run_id: int, start: datetime,
                        end: datetime) -> asyncpg.Record:
    """(n, first_at, last_at) of the day rollups overlapping [start, end) — n over-counts edge days."""
    return await conn.fetchrow(EQUITY_EXTENT, run_id, start, end)


async def equity_summary(conn: asyncpg.Connection, *, run_id: int) -> asyncpg.Record:
    """Point count, first/last time and equity, lowest/highest equity of a run."""
    return await conn.fetchrow(EQUITY_SUMMARY, run_id)


async def raw_points(conn: asyncpg.Connection, *, run_id: int, start: datetime, end: datetime,
                     limit: int) -> list[asyncpg.Record]:
    """Raw points in [start, end), at most ``limit``."""
    return await conn.fetch(RAW_POINTS, run_id, start, end, limit)


async def raw_candidates(conn: asyncpg.Connection, *, run_id: int, start: datetime, end: datetime,
                         width: Any) -> asyncpg.Record:
    """First/min/max/last of each ``width`` bucket of the raw points in [start, end)."""
    return await conn.fetchrow(RAW_CANDIDATES, run_id, start, end, width)


async def rollup_candidates(conn: asyncpg.Connection, *, run_id: int, width_s: int, start: datetime,
                            end: datetime) -> asyncpg.Record:
    """First/min/max/last of each ``width_s`` rollup bucket starting in [start, end)."""
    return await conn.fetchrow(ROLLUP_CANDIDATES, run_id, width_s, start, end)


COMPACTION_CANDIDATES = """
SELECT run_id FROM trading.equity_compaction_candidates ORDER BY tail_points DESC, run_id LIMIT $1
"""


async def compaction_candidates(conn: asyncpg.Connection, *, limit: int) -> list[int]:
    """Runs whose points after their last block fill at least one block (largest backlog first)."""
    return [r["run_id"] for r in await conn.fetch(COMPACTION_CANDIDATES, limit)]


async def compact(conn: asyncpg.Connection, *, run_id: int, max_points: int) -> int:
    """Pack up to ``max_points`` of the run's points after its last block into full blocks (0: busy or
    nothing to pack); one transaction."""
    return await conn.fetchval("SELECT trading.equity_compact($1, $2)", run_id, max_points)


# A bot run whose bot has not heartbeaten for `stale` is over: the process was killed or its host lost
# (a bot that merely froze finds its run abandoned at its next heartbeat and exits, to be restarted).
ABANDON_STALE_RUNS = """
WITH stale AS (
    UPDATE trading.runs
       SET status = 'abandoned', finished_at = now(), updated_at = now(),
           error = format('no heartbeat since %s', to_char(coalesce(heartbeat_at, started_at, created_at)
                                                            AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
     WHERE status = 'running' AND kind IN ('paper', 'shadow', 'live')
       AND coalesce(heartbeat_at, started_at, created_at) < now() - $1::double precision * interval '1 second'
    RETURNING id, bot_id, coalesce(heartbeat_at, started_at, created_at) AS last_seen
), noted AS (
    INSERT INTO trading.bot_events (bot_id, run_id, kind, level, message, data)
    SELECT bot_id, id, 'run_abandoned', 'warning', 'run abandoned: its bot stopped heartbeating',
           jsonb_build_object('lastHeartbeatAt', last_seen)
      FROM stale WHERE bot_id IS NOT NULL
)
SELECT id FROM stale
"""


async def abandon_stale_runs(conn: asyncpg.Connection, *, stale_after_s: float) -> list[int]:
    """Mark bot runs without a heartbeat for ``stale_after_s`` abandoned (with a bot event each)."""
    return [r["id"] for r in await conn.fetch(ABANDON_STALE_RUNS, stale_after_s)]
