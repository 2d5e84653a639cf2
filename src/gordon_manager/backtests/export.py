"""A backtest run's trades and equity as files (`gordon-manager backtest --export DIR`).

Read back from what the run wrote (``trading.roundtrips``, ``trading.equity_points``), so an export is
exactly the run the console shows. CSV is PostgreSQL's own ``COPY ... TO STDOUT (FORMAT csv, HEADER)``
(times in UTC, numerics exact, float8 in their shortest round-trip digits); Parquet (``pyarrow``, the
``parquet`` extra) converts that CSV with typed columns: times as UTC timestamps, money as decimal
strings kept exact, floats as float64.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import asyncpg

__all__ = ["EQUITY_QUERY", "FORMATS", "TRADES_QUERY", "export_run"]

Format = Literal["csv", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "parquet")

# A trade's return is its net PnL over its entry notional (stats.trade_return).
TRADES_QUERY = """
SELECT id, symbol, side, entry_at, exit_at, entry_price, exit_price, qty, gross_pnl, fees, net_pnl,
       CASE WHEN entry_price * qty <> 0 THEN (net_pnl / (entry_price * qty))::float8 END AS return,
       duration_s, exit_reason
  FROM trading.roundtrips WHERE run_id = {run_id} ORDER BY id
"""

EQUITY_QUERY = """
SELECT ts, equity, cash, position_qty, price FROM trading.equity_points WHERE run_id = {run_id} ORDER BY ts
"""

_TIME_COLUMNS = {"entry_at", "exit_at", "ts"}
_EXACT_COLUMNS = {"entry_price", "exit_price", "qty", "gross_pnl", "fees", "net_pnl"}


async def _csv(conn: asyncpg.Connection, query: str) -> bytes:
    out = io.BytesIO()
    await conn.copy_from_query(query, output=out, format="csv", header=True)
    return out.getvalue()


def _parquet(data: bytes, path: Path) -> None:
    try:
        import pyarrow as pa
        from pyarrow import csv as pacsv
        from pyarrow import parquet as pq
    except ImportError as exc:  # pragma: no cover - the extra is part of the test install
        raise RuntimeError("Parquet export needs pyarrow: pip install 'gordon-manager[parquet]'") from exc
    header = data.split(b"\n", 1)[0].decode().split(",")
    types = {name: pa.timestamp("us", tz="UTC") for name in header if name in _TIME_COLUMNS}
    types.update({name: pa.string() for name in header if name in _EXACT_COLUMNS})
    table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
        column_types=types, timestamp_parsers=[pacsv.ISO8601]))
    pq.write_table(table, path)


async def export_run(conn: asyncpg.Connection, *, run_id: int, directory: Path, fmt: Format = "csv") -> dict[str, Path]:
    """Write ``trades.<fmt>`` and ``equity.<fmt>`` of run ``run_id`` into ``directory`` (created);
    returns the paths by name."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    directory.mkdir(parents=True, exist_ok=True)
    await conn.execute("SET TIME ZONE 'UTC'")
    paths = {}
    for name, query in (("trades", TRADES_QUERY), ("equity", EQUITY_QUERY)):
        data = await _csv(conn, query.format(run_id=int(run_id)))
        path = directory / f"{name}.{fmt}"
        if fmt == "csv":
            path.write_bytes(data)
        else:
            _parquet(data, path)
        paths[name] = path
    return paths
