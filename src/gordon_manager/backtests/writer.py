"""Backtest results into Postgres: equity points by binary COPY, round trips by text COPY, stats as jsonb.

The equity rollups (migrations 0010, 0027, 0028) of the points are computed here, with numpy, at
every level, in the COPY's transaction, which tells the rollup trigger to skip the points
(``gordon.equity_rollups = writer``, transaction-local): the database then does no per-point
aggregation, and the rollups are the ones the trigger would have made. A run without rollups yet
(a backtest's, always) gets them by one binary COPY (``trading.equity_rollups_copy_begin`` locks
the run and says so); otherwise they are merged with ``trading.equity_rollups_put``.

Equity points are built as one numpy buffer in PostgreSQL's binary COPY format (``pgbinary``) and
sent with ``copy_to_table``: the same binary COPY ``copy_records_to_table`` performs, without
making a million tuples of ``datetime`` and ``float`` first (about 4x faster at 1M points). Round
trips carry exact Decimals: a text COPY of ``str(Decimal)`` (see ``write_roundtrips``).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from gordon_manager.backtests.engine import BacktestResult
from gordon_manager.execution import RoundTrip
from gordon_manager.http.values import plain_decimal
from gordon_manager.marketdata import pgbinary
from gordon_manager.runs.repo import EQUITY_POINT_COLUMNS

__all__ = ["EQUITY_CHUNK_ROWS", "PointWriters", "equity_columns", "rollup_buckets", "rollup_columns",
           "rollup_rows", "rollups_by_writer", "stats_json", "write_equity", "write_rollups", "write_roundtrips"]

ROLLUP_COLUMNS = ["run_id", "width_s", "bucket_at", "n", "first_at", "first_equity", "last_at", "last_equity", "min_at",
                  "min_equity", "max_at", "max_equity"]
ROUNDTRIP_COLUMNS = ["run_id", "symbol", "side", "entry_at", "exit_at", "entry_price", "exit_price", "qty",
                     "gross_pnl", "fees", "net_pnl", "duration_s", "exit_reason"]


def equity_columns(run_id: int, result: BacktestResult, close: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The equity_points columns of a result, as (pgbinary kind, values) pairs."""
    ts_pg_us = result.ts.astype(np.int64) * 1000 - pgbinary.PG_EPOCH_US
    return [("i8", np.full(len(ts_pg_us), run_id, dtype=np.int64)), ("i8", ts_pg_us), ("f8", result.equity),
            ("f8", result.cash), ("f8", result.qty), ("f8", close)]


EQUITY_CHUNK_ROWS = 100_000
"""Equity points per COPY: a long write reports its progress between chunks (the rollup trigger merges
buckets that span two chunks: ``ON CONFLICT DO UPDATE``)."""


ROLLUP_WIDTHS_S = (300, 3600, 86400)  # migration 0010's levels


def rollup_buckets(ts_ms: np.ndarray, equity: np.ndarray, width_s: int = 300) -> list[np.ndarray]:
    """The rollup buckets of ``width_s`` of points sorted by time: bucket start, count, first and last
    (Unix us and equity), lowest and highest equity with their times (the earliest point on ties, as
    the trigger's ``min(ARRAY[equity, epoch])`` and ``max(ARRAY[equity, -epoch])``). Buckets are
    ``date_bin(width, ts, epoch)``."""
    us = ts_ms.astype(np.int64) * 1000
    n = us.shape[0]
    width_us = width_s * 1_000_000
    bucket = us // width_us  # floor, as date_bin
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    counts = np.diff(np.append(starts, n))
    ends = starts + counts - 1
    seg = np.repeat(np.arange(starts.shape[0]), counts)

    def earliest(extreme: np.ndarray) -> np.ndarray:
        hit = np.flatnonzero(equity == extreme[seg])
        return hit[np.concatenate(([True], seg[hit][1:] != seg[hit][:-1]))]

    lo = earliest(np.minimum.reduceat(equity, starts))
    hi = earliest(np.maximum.reduceat(equity, starts))
    return [bucket[starts] * width_us, counts.astype(np.int64), us[starts], equity[starts], us[ends], equity[ends],
            us[lo], equity[lo], us[hi], equity[hi]]


def _levels(ts_ms: np.ndarray, equity: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(width of each bucket, the ten ``rollup_buckets`` columns) of every level, concatenated."""
    levels = [rollup_buckets(ts_ms, equity, w) for w in ROLLUP_WIDTHS_S]
    widths = np.concatenate([np.full(level[0].shape[0], w, dtype=np.int32)
                             for w, level in zip(ROLLUP_WIDTHS_S, levels, strict=True)])
    return widths, [np.concatenate(parts) for parts in zip(*levels, strict=True)]


def rollup_rows(ts_ms: np.ndarray, equity: np.ndarray) -> list[list[Any]]:
    """``equity_rollups_put``'s arrays (after the run id): every level's buckets, concatenated."""
    widths, cols = _levels(ts_ms, equity)
    return [widths.tolist(), *(c.tolist() for c in cols)]


def rollup_columns(run_id: int, ts_ms: np.ndarray, equity: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The equity_rollups rows of these points (every level), as ``ROLLUP_COLUMNS`` (pgbinary kind, values)."""
    widths, (bucket, n, first, first_eq, last, last_eq, lo, lo_eq, hi, hi_eq) = _levels(ts_ms, equity)
    pg = pgbinary.PG_EPOCH_US
    return [("i8", np.full(widths.shape[0], run_id, dtype=np.int64)), ("i4", widths), ("i8", bucket - pg),
            ("i8", n), ("i8", first - pg), ("f8", first_eq), ("i8", last - pg), ("f8", last_eq), ("i8", lo - pg),
            ("f8", lo_eq), ("i8", hi - pg), ("f8", hi_eq)]


WRITER_MODE = "SELECT set_config('gordon.equity_rollups', 'writer', true)"
"""The points' rollup trigger skips this transaction's statements (migration 0027): the writer puts them."""


async def write_equity(conn: asyncpg.Connection, *, run_id: int, result: BacktestResult, close: np.ndarray,
                       on_rows: Callable[[int], None] | None = None, chunk_rows: int | None = None) -> int:
    """One equity point per bar close (binary COPY, ``chunk_rows`` per statement, default
    ``EQUITY_CHUNK_ROWS``; ``on_rows(written)`` after each), then their rollups; returns the count.

    One transaction (a savepoint inside the caller's): the trigger-skip setting, the COPYs of the
    points, then the rollups of all of them (``write_rollups``), so the points and their rollups
    commit or roll back together. The setting is cleared before it ends: later statements of the
    caller's transaction use the trigger. A long backtest writes its points with ``PointWriters``
    instead.
    """
    columns = equity_columns(run_id, result, close)
    n = len(result.ts)
    by_writer = rollups_by_writer(result.ts, result.equity)
    chunk_rows = chunk_rows or EQUITY_CHUNK_ROWS
    async with conn.transaction():
        if by_writer:
            await conn.execute(WRITER_MODE)
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            stream = pgbinary.encode([(kind, values[start:stop]) for kind, values in columns])
            await conn.copy_to_table("equity_points", schema_name="trading", source=io.BytesIO(stream),
                                     columns=EQUITY_POINT_COLUMNS, format="binary")
            if on_rows is not None:
                on_rows(stop)
        if by_writer:
            await write_rollups(conn, run_id=run_id, result=result)
            await conn.execute("SELECT set_config('gordon.equity_rollups', '', true)")
    return n


def rollups_by_writer(ts_ms: np.ndarray, equity: np.ndarray) -> bool:
    """Sorted times and finite equity: the writer's numpy buckets are the trigger's (else the trigger does it)."""
    return bool(np.all(np.diff(ts_ms) > 0)) and bool(np.isfinite(equity).all())


async def write_rollups(conn: asyncpg.Connection, *, run_id: int, result: BacktestResult) -> None:
    """The rollups of all of a run's points (``rollups_by_writer`` must hold), in a savepoint: one binary
    COPY when the run has none yet (always, for a backtest), else merged by ``equity_rollups_put``."""
    async with conn.transaction():
        if await conn.fetchval("SELECT trading.equity_rollups_copy_begin($1)", run_id):
            stream = pgbinary.encode(rollup_columns(run_id, result.ts, result.equity))
            await conn.copy_to_table("equity_rollups", schema_name="trading", source=io.BytesIO(stream),
                                     columns=ROLLUP_COLUMNS, format="binary")
        else:  # the run has rollups already: merge
            await conn.execute("SELECT trading.equity_rollups_put($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                               " $11, $12)", run_id, *rollup_rows(result.ts, result.equity))


class PointWriters:
    """A running backtest's equity points COPYed over other connections at once, each in a transaction
    of its own that commits as soon as its slice is in (protocol: migration 0029).

    Each connection takes one contiguous slice, sent as ONE COPY statement streamed chunk by chunk
    (``chunk_rows``): the points' statement trigger then runs, and takes the run's lock, once per
    writer, at its end. ``on_rows(written)`` sees the points sent so far, over every writer. The
    rollups are not theirs (the writer setting): the run's own transaction writes them
    (``write_rollups``), and the round trips, meanwhile; then it ``await wait()``s (True: every
    slice committed; False: the run was not running any more, and nothing of that slice was
    written) before it marks the run done. ``close()`` cancels the writers still going (their
    transactions roll back); ending the run as failed or cancelled deletes what committed.
    """

    def __init__(self, conns: list[asyncpg.Connection], *, run_id: int, result: BacktestResult, close: np.ndarray,
                 on_rows: Callable[[int], None] | None = None, chunk_rows: int | None = None,
                 work_mem: str | None = None) -> None:
        columns = equity_columns(run_id, result, close)
        bounds = np.linspace(0, len(result.ts), len(conns) + 1).astype(np.int64).tolist()
        self._sent = [0] * len(conns)
        self._on_rows = on_rows
        self._tasks = [asyncio.ensure_future(self._copy(i, conn, run_id, columns, bounds[i], bounds[i + 1],
                                                        chunk_rows or EQUITY_CHUNK_ROWS, work_mem))
                       for i, conn in enumerate(conns)]

    async def _copy(self, i: int, conn: asyncpg.Connection, run_id: int, columns: list[tuple[str, np.ndarray]],
                    start: int, stop: int, chunk_rows: int, work_mem: str | None) -> bool:
        async def chunks() -> AsyncIterator[bytes]:
            pieces = pgbinary.encode_stream([(kind, values[start:stop]) for kind, values in columns], chunk_rows)
            for k, piece in enumerate(pieces):
                yield piece
                # asyncpg sent the piece before asking for the next
                self._sent[i] = min(stop - start, (k + 1) * chunk_rows)
                if self._on_rows is not None:
                    self._on_rows(sum(self._sent))

        async with conn.transaction():
            if work_mem is not None:
                await conn.execute(f"SET LOCAL work_mem = '{work_mem}'")
            if not await conn.fetchval("SELECT trading.equity_points_copy_begin($1)", run_id):
                return False
            await conn.execute(WRITER_MODE)
            if stop > start:
                await conn.copy_to_table("equity_points", schema_name="trading", source=chunks(),
                                         columns=EQUITY_POINT_COLUMNS, format="binary")
        return True

    async def wait(self) -> bool:
        """True when every slice committed; False when the run had stopped running (or raises a writer's error)."""
        return all(await asyncio.gather(*self._tasks))

    async def close(self) -> None:
        """Cancel the writers still going and wait for them (their transactions roll back)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _at(ts_ms: int) -> str:
    """A Unix-ms time as a timestamptz literal (UTC)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()


def _text(value: str) -> str:
    """A value for a text-format COPY row (backslash, tab and line ends escaped)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


async def write_roundtrips(conn: asyncpg.Connection, *, run_id: int, symbol: str, trips: list[RoundTrip]) -> int:
    """Every round trip of the run (one text-format COPY: exact numerics, as ``str(Decimal)``, which
    PostgreSQL's numeric input reads back digit for digit); returns the count.

    Text, not binary: asyncpg encodes a Decimal to binary numeric in Python, ~10x slower for the
    ~10k round trips of a million-bar run.
    """
    if not trips:
        return 0
    sym = _text(symbol)
    rows = "".join(
        f"{run_id}\t{sym}\tlong\t{_at(t.entry_ts)}\t{_at(t.exit_ts)}\t{t.entry_price}\t{t.exit_price}\t{t.qty}\t"
        f"{t.gross_pnl}\t{t.fees}\t{t.net_pnl}\t{t.duration_ms / 1000.0!r}\t{_text(str(t.exit_reason))}\n"
        for t in trips)
    await conn.copy_to_table("roundtrips", schema_name="trading", columns=ROUNDTRIP_COLUMNS,
                             source=io.BytesIO(rows.encode()), format="text")
    return len(trips)


def stats_json(result: BacktestResult, *, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """``runs.stats``: the summary figures (fractions, not percent; money as decimal strings; durations in
    seconds; formulas in ``gordon_manager.stats``)."""
    s = result.stats
    fill_count, decision_count, rejection_count = result.counts()
    out: dict[str, Any] = {
        "total_return": s.total_return, "max_drawdown": s.max_drawdown, "sharpe": s.sharpe,
        "win_rate": s.win_rate, "trade_count": s.trade_count, "total_fees": str(s.total_fees),
        "final_equity": s.final_equity, "initial_equity": s.initial_equity, "exposure": s.exposure,
        "bars": s.bars, "fill_count": fill_count, "decision_count": decision_count,
        "rejection_count": rejection_count,
        "cagr": s.cagr, "buy_hold_return": s.buy_hold_return, "volatility": s.volatility, "sortino": s.sortino,
        "calmar": s.calmar, "avg_drawdown": s.avg_drawdown, "max_drawdown_duration_s": s.max_drawdown_duration_s,
        "avg_drawdown_duration_s": s.avg_drawdown_duration_s, "drawdown_count": s.drawdown_count,
        "best_trade": s.best_trade, "worst_trade": s.worst_trade, "avg_trade": s.avg_trade,
        "profit_factor": s.profit_factor, "expectancy": s.expectancy, "sqn": s.sqn, "net_pnl": plain_decimal(s.net_pnl),
        "by_exit_reason": [{"reason": g.reason, "trades": g.trades, "win_rate": g.win_rate,
                            "net_pnl": plain_decimal(g.net_pnl), "expectancy": g.expectancy} for g in s.by_exit_reason],
        "by_month": [{"month": m.month, "return": m.return_, "trades": m.trades, "net_pnl": plain_decimal(m.net_pnl)}
                     for m in s.by_month],
    }
    if timings is not None:
        out["timings"] = {k: round(v, 4) for k, v in timings.items()}
    return out
