"""SQL of the console reads (constants; filters composed from constant fragments; values bound)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from gordon_manager.db.sql import compose

# -- portfolio -------------------------------------------------------------------------------------
POSITIONS = """
SELECT p.bot_id, c.name AS bot_name, c.mode, p.symbol, p.qty, p.avg_entry_price, p.mark_price, p.cash,
       p.exposure, p.unrealized_pnl, p.updated_at
FROM trading.portfolio_state p
LEFT JOIN trading.bot_configs c ON c.id = p.bot_id
ORDER BY p.bot_id NULLS FIRST, p.symbol
"""

# Each bot's newest running paper/shadow/live run with its newest equity point.
LIVE_RUNS = """
SELECT lr.*, c.name AS bot_name, c.mode, e.equity, e.ts AS equity_at, e.position_qty
FROM (
    SELECT DISTINCT ON (bot_id) id, bot_id, kind, symbol, started_at
    FROM trading.runs
    WHERE status = 'running' AND kind IN ('paper', 'shadow', 'live') AND bot_id IS NOT NULL
    ORDER BY bot_id, id DESC
) lr
JOIN trading.bot_configs c ON c.id = lr.bot_id
LEFT JOIN LATERAL (
    SELECT equity, ts, position_qty FROM trading.equity_points WHERE run_id = lr.id ORDER BY ts DESC LIMIT 1
) e ON true
ORDER BY lr.bot_id
"""


async def positions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every portfolio_state row with its bot's name and mode."""
    return await conn.fetch(POSITIONS)


async def live_runs(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Each bot's newest running run and newest equity point."""
    return await conn.fetch(LIVE_RUNS)


# -- performance -----------------------------------------------------------------------------------
# Hourly rollups of the bots' runs of the given kinds, in time order per run.
HOURLY = """
SELECT r.bot_id, c.name AS bot_name, e.run_id, e.bucket_at, e.first_at, e.first_equity, e.last_at, e.last_equity
FROM trading.runs r
JOIN trading.bot_configs c ON c.id = r.bot_id
JOIN trading.equity_rollups e ON e.run_id = r.id AND e.width_s = 3600
WHERE r.bot_id IS NOT NULL AND r.kind = ANY($1::text[]) AND ($2::bigint IS NULL OR r.bot_id = $2)
ORDER BY r.bot_id, e.run_id, e.bucket_at
"""

BOTS = """
SELECT id, name FROM trading.bot_configs
WHERE ($1::bigint IS NULL OR id = $1) AND (deleted_at IS NULL OR id = $1)
ORDER BY id
"""


async def hourly(conn: asyncpg.Connection, *, kinds: Sequence[str], bot_id: int | None) -> list[asyncpg.Record]:
    """Hourly first/last equity of every run of the bots (of ``kinds``)."""
    return await conn.fetch(HOURLY, list(kinds), bot_id)


async def bots(conn: asyncpg.Connection, *, bot_id: int | None) -> list[asyncpg.Record]:
    """Live (not deleted) bots, or the one asked for."""
    return await conn.fetch(BOTS, bot_id)


# -- overlays --------------------------------------------------------------------------------------
OVERLAY_FILTERS = {
    "bot_id": "bot_id = ${}",
    "overlay": "overlay = ${}",
    "decision": "decision = ${}",
    "at_from": "at >= ${}",
    "at_to": "at < ${}",
    "before_id": "id < ${}",
}

OVERLAY_SUMMARY = """
SELECT overlay, decision, count(*)::bigint AS n
FROM trading.overlay_decisions
WHERE at >= $1 AND at < $2 AND ($3::bigint IS NULL OR bot_id = $3)
GROUP BY overlay, decision
ORDER BY overlay, decision
"""


async def overlay_decisions(conn: asyncpg.Connection, *, limit: int, **filters: Any) -> list[asyncpg.Record]:
    """Overlay decisions newest first (by id), keyset before ``before_id``."""
    sql, args = compose("SELECT id, bot_id, overlay, decision, reason, data, at FROM trading.overlay_decisions",
                        OVERLAY_FILTERS, {**filters, "limit": limit}, "ORDER BY id DESC LIMIT {limit}")
    return await conn.fetch(sql, *args)


async def overlay_summary(conn: asyncpg.Connection, *, start: datetime, end: datetime,
                          bot_id: int | None) -> list[asyncpg.Record]:
    """Decision counts by overlay and decision in [start, end)."""
    return await conn.fetch(OVERLAY_SUMMARY, start, end, bot_id)


# -- data ------------------------------------------------------------------------------------------
SOURCES = """
SELECT source, last_update_at, last_data_at, stale_after_seconds, detail, updated_at
FROM trading.source_freshness ORDER BY source
"""

BACKFILL_COUNTS = """
SELECT status, count(*)::bigint AS n,
       count(*) FILTER (WHERE status = 'failed' AND updated_at >= now() - interval '24 hours')::bigint AS recent
FROM trading.backfill_jobs GROUP BY status
"""

BACKFILL_FILTERS = {
    "status": "status = ${}",
    "source": "source = ${}",
    "symbol": "symbol = ${}",
    "before_id": "id < ${}",
}
BACKFILL_COLUMNS = """id, source, symbol, interval, range_start, range_end, status, progress, rows_written, error,
    created_at, updated_at"""

# The bar length of a klines interval ('1m', '4h', '1M'…) as an interval; months are calendar months.
_STEP = """(left(interval, -1) || CASE right(interval, 1) WHEN 's' THEN ' seconds' WHEN 'm' THEN ' minutes'
    WHEN 'h' THEN ' hours' WHEN 'd' THEN ' days' WHEN 'w' THEN ' weeks' ELSE ' months' END)::interval"""

# Per symbol/interval: extent, rows, holes. A hole is a bar whose predecessor + one step is earlier
# than its own open time; its missing bars are the steps that fit in between.
KLINES_INVENTORY = f"""
WITH k AS (
    SELECT symbol, interval, open_time, {_STEP} AS step,
           lag(open_time) OVER (PARTITION BY symbol, interval ORDER BY open_time) AS prev
    FROM market_data.v_klines_reader
    WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR interval = $2)
)
SELECT symbol, interval, min(open_time) AS first_at, max(open_time) AS last_at, count(*)::bigint AS rows,
       count(*) FILTER (WHERE prev + step < open_time)::bigint AS gaps,
       coalesce(sum(CASE WHEN prev + step >= open_time THEN 0
                         WHEN right(interval, 1) = 'M' THEN
                              ((extract(year FROM open_time) * 12 + extract(month FROM open_time))
                               - (extract(year FROM prev) * 12 + extract(month FROM prev))) / left(interval, -1)::int - 1
                         ELSE floor(extract(epoch FROM open_time - prev) / extract(epoch FROM step)) - 1
                    END), 0)::bigint AS missing_bars,
       min(prev + step) FILTER (WHERE prev + step < open_time) AS first_gap_at
FROM k GROUP BY symbol, interval ORDER BY symbol, interval
"""

OTHER_INVENTORY = """
SELECT 'funding_rates' AS dataset, symbol, NULL::text AS name, min(funding_time) AS first_at,
       max(funding_time) AS last_at, count(*)::bigint AS rows
FROM market_data.v_funding_rates_reader WHERE ($1::text IS NULL OR symbol = $1) GROUP BY symbol
UNION ALL
SELECT 'open_interest', symbol, NULL, min(ts), max(ts), count(*)
FROM market_data.v_open_interest_reader WHERE ($1::text IS NULL OR symbol = $1) GROUP BY symbol
UNION ALL
SELECT 'metrics', symbol, name, min(ts), max(ts), count(*)
FROM market_data.v_metrics_reader WHERE ($1::text IS NULL OR symbol = $1) GROUP BY symbol, name
UNION ALL
SELECT 'macro', series, NULL, min(ts), max(ts), count(*)
FROM market_data.v_macro_reader WHERE ($1::text IS NULL OR series = $1) GROUP BY series
ORDER BY 1, 2, 3
"""


async def sources(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every source_freshness row."""
    return await conn.fetch(SOURCES)


async def backfill_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Backfill jobs by status, with failures of the last 24 h."""
    return await conn.fetch(BACKFILL_COUNTS)


async def backfill_jobs(conn: asyncpg.Connection, *, limit: int, **filters: Any) -> list[asyncpg.Record]:
    """Backfill jobs newest first (by id), keyset before ``before_id``."""
    sql, args = compose(f"SELECT {BACKFILL_COLUMNS} FROM trading.backfill_jobs", BACKFILL_FILTERS,
                        {**filters, "limit": limit}, "ORDER BY id DESC LIMIT {limit}")
    return await conn.fetch(sql, *args)


async def klines_inventory(conn: asyncpg.Connection, *, symbol: str | None,
                           interval: str | None) -> list[asyncpg.Record]:
    """Klines extent, rows and gaps per symbol/interval."""
    return await conn.fetch(KLINES_INVENTORY, symbol, interval)


async def other_inventory(conn: asyncpg.Connection, *, symbol: str | None) -> list[asyncpg.Record]:
    """Extent and rows of the funding, open-interest, metrics and macro series."""
    return await conn.fetch(OTHER_INVENTORY, symbol)
