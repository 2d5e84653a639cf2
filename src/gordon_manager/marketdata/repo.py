"""SQL of market data: kline reads through ``v_klines_reader`` only, kline imports into the table.

Reads run as the service role, which may not SELECT ``market_data.klines`` (least privilege): they
go through the reader view. Imports run with the admin URL. Functions never commit; callers own
transactions.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Sequence
from datetime import datetime

import asyncpg
import numpy as np

from gordon_manager.errors import ConfigurationError
from gordon_manager.execution.bars import Bars
from gordon_manager.marketdata import pgbinary

__all__ = ["count_klines", "create_stage", "has_klines", "kline_span", "load_bars", "load_bars_split", "merge_klines"]

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


async def _load_columns(conn: asyncpg.Connection, symbol: str, interval: str, start: datetime,
                        end: datetime) -> list[np.ndarray]:
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(LOAD_KLINES, symbol, interval, start, end, output=sink, format="binary")
    return pgbinary.decode(b"".join(chunks), _LOAD_KINDS)


def _bars(columns: list[np.ndarray]) -> Bars:
    ts_us, o, h, lo, c, v = columns
    return Bars(ts=(ts_us + pgbinary.PG_EPOCH_US) // 1000, open=o, high=h, low=lo, close=c, volume=v)


async def load_bars(conn: asyncpg.Connection, *, symbol: str, interval: str, start: datetime,
                    end: datetime) -> Bars:
    """The klines of ``symbol``/``interval`` with ``start <= open_time < end`` as float64 ``Bars``."""
    return _bars(await _load_columns(conn, symbol, interval, start, end))


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


async def load_bars_split(conns: Sequence[asyncpg.Connection], *, symbol: str, interval: str, start: datetime,
                          end: datetime) -> Bars:
    """``load_bars`` with ``[start, end)`` cut into ``len(conns)`` equal time slices read at once, one per
    connection (the server formats and sends each slice on its own backend: ~40% faster for a million
    bars on 2 cores), all in ONE snapshot (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``, as
    ``pg_dump -j`` does), so the bars are exactly those a single read would have seen.

    Each connection runs a short read-only transaction and must be outside one when called."""
    if len(conns) < 2:
        return await load_bars(conns[0], symbol=symbol, interval=interval, start=start, end=end)
    step = (end - start) / len(conns)
    cuts = [start + step * i for i in range(len(conns))] + [end]
    first, rest = conns[0], conns[1:]
    txs = [conn.transaction(isolation="repeatable_read", readonly=True) for conn in conns]
    await txs[0].start()
    try:
        snapshot = await first.fetchval("SELECT pg_export_snapshot()")
        if not _SNAPSHOT_ID.match(snapshot):  # interpolated below: SET TRANSACTION SNAPSHOT takes no parameter
            raise ValueError(f"unexpected snapshot id {snapshot!r}")
        started = [txs[0]]
        try:
            for conn, tx in zip(rest, txs[1:], strict=True):
                await tx.start()
                started.append(tx)
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            parts = await asyncio.gather(*(_load_columns(conn, symbol, interval, cuts[i], cuts[i + 1])
                                           for i, conn in enumerate(conns)))
        finally:
            for tx in started[1:]:
                await tx.rollback()
    finally:
        await txs[0].rollback()
    return _bars([np.concatenate(column) for column in zip(*parts, strict=True)])


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
