"""SQL of market data: kline reads through ``v_klines_reader`` only, kline imports into the table.

Reads run as the service role, which may not SELECT ``market_data.klines`` (least privilege): they
go through the reader view. Imports run with the admin URL. Functions never commit; callers own
transactions.
"""

from __future__ import annotations

import io
from datetime import datetime

import asyncpg
import numpy as np

from gordon_manager.errors import ConfigurationError
from gordon_manager.execution.bars import Bars
from gordon_manager.marketdata import pgbinary

__all__ = ["count_klines", "create_stage", "has_klines", "kline_span", "load_bars", "merge_klines"]

# Bars for a backtest, oldest first: [start, end) on the open time. Binary COPY so the rows never
# become Python objects (see pgbinary).
LOAD_KLINES = """
SELECT open_time, open, high, low, close, volume
  FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4
 ORDER BY open_time
"""
_LOAD_KINDS = ("i8", "f8", "f8", "f8", "f8", "f8")

HAS_KLINES = """
SELECT EXISTS (SELECT 1 FROM market_data.v_klines_reader
                WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4)
"""

COUNT_KLINES = """
SELECT count(*) FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4
"""

KLINE_SPAN = """
SELECT count(*) AS bars, min(open_time) AS first_at, max(open_time) AS last_at
  FROM market_data.v_klines_reader WHERE symbol = $1 AND interval = $2
"""

# Imports: COPY into a temp table, then one INSERT … ON CONFLICT DO NOTHING, so a re-import of the
# same file changes nothing and a partly overlapping one adds only the new bars.
STAGE_COLUMNS = ("open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
                 "taker_buy_base_volume", "taker_buy_quote_volume")
STAGE_KINDS = ("i8", "i8", "f8", "f8", "f8", "f8", "f8", "f8", "i8", "f8", "f8")
CREATE_STAGE = """
CREATE TEMP TABLE kline_stage (
    open_time timestamptz, close_time timestamptz, open float8, high float8, low float8, close float8,
    volume float8, quote_volume float8, trades bigint, taker_buy_base_volume float8, taker_buy_quote_volume float8
) ON COMMIT DROP
"""
MERGE_STAGE = """
INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume,
                                quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume)
SELECT $1, $2, open_time, close_time, open, high, low, close, volume,
       quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume
  FROM kline_stage
ON CONFLICT (symbol, interval, open_time) DO NOTHING
"""
CLEAR_STAGE = "TRUNCATE kline_stage"


async def load_bars(conn: asyncpg.Connection, *, symbol: str, interval: str, start: datetime,
                    end: datetime) -> Bars:
    """The klines of ``symbol``/``interval`` with ``start <= open_time < end`` as float64 ``Bars``."""
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(LOAD_KLINES, symbol, interval, start, end, output=sink, format="binary")
    ts_us, o, h, lo, c, v = pgbinary.decode(b"".join(chunks), _LOAD_KINDS)
    ts_ms = (ts_us + pgbinary.PG_EPOCH_US) // 1000
    return Bars(ts=ts_ms, open=o, high=h, low=lo, close=c, volume=v)


async def has_klines(conn: asyncpg.Connection, *, symbol: str, interval: str, start: datetime,
                     end: datetime) -> bool:
    """Whether at least one kline lies in ``[start, end)``."""
    return bool(await conn.fetchval(HAS_KLINES, symbol, interval, start, end))


async def count_klines(conn: asyncpg.Connection, *, symbol: str, interval: str, start: datetime,
                       end: datetime) -> int:
    """How many klines lie in ``[start, end)``."""
    return int(await conn.fetchval(COUNT_KLINES, symbol, interval, start, end))


async def kline_span(conn: asyncpg.Connection, *, symbol: str, interval: str) -> asyncpg.Record:
    """``bars``, ``first_at`` and ``last_at`` of one series (count 0 and NULLs when empty)."""
    return await conn.fetchrow(KLINE_SPAN, symbol, interval)


async def create_stage(conn: asyncpg.Connection) -> None:
    """The import stage table (dropped at commit): call once per transaction, before ``merge_klines``."""
    try:
        await conn.execute(CREATE_STAGE)
    except asyncpg.InsufficientPrivilegeError as exc:  # pragma: no cover - every role may create temp tables
        raise ConfigurationError(f"this database user may not create temp tables ({exc})") from exc


async def merge_klines(conn: asyncpg.Connection, *, symbol: str, interval: str,
                       columns: dict[str, np.ndarray]) -> int:
    """Insert the klines in ``columns`` (STAGE_COLUMNS; times in µs since 2000) that are not stored yet.

    Returns how many rows were new. Runs inside the caller's transaction, after ``create_stage``.
    """
    stream = pgbinary.encode([(kind, columns[name]) for name, kind in zip(STAGE_COLUMNS, STAGE_KINDS, strict=True)])
    try:
        await conn.copy_to_table("kline_stage", source=io.BytesIO(stream), columns=list(STAGE_COLUMNS),
                                 format="binary")
        status = await conn.execute(MERGE_STAGE, symbol, interval)
        await conn.execute(CLEAR_STAGE)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise ConfigurationError(
            f"this database user may not write market_data.klines ({exc}); set GORDON_DATABASE_ADMIN_URL "
            "to a URL with rights on market_data") from exc
    except asyncpg.UndefinedTableError as exc:
        raise ConfigurationError(f"{exc}: the database is not migrated (run `gordon-manager migrate`)") from exc
    return int(status.rsplit(" ", 1)[-1])
