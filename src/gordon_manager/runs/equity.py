"""Equity reads: keyset pages (the hot path) and server-side downsampling of whole ranges.

Pages are answered with one query and pre-built JSON bytes (orjson): no model validation per
point. A ``points=N`` read reduces the range to at most N points that keep its shape and extremes:

1. the day rollups tell how many raw points the range holds (no scan of the points);
2. few enough to return (≤ N): the raw points, every field;
3. at most ``RAW_REDUCE_LIMIT``: SQL reduces the raw points to first/min/max/last per bucket
   (about N buckets of equal time width);
4. more: the same candidates are read from the coarsest rollup level (5 min, 1 h, 1 day) that
   still has ≥ N buckets in the range, plus the raw points of the partial buckets at the edges;
5. numpy reduces the candidates to N points (LTTB or min/max, see ``runs.downsample``), keeping
   the global minimum and maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import numpy as np
import orjson

from gordon_manager import rowjson as _rowjson
from gordon_manager.errors import NotFound
from gordon_manager.http.values import float_decimals
from gordon_manager.runs import downsample, repo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MIN = datetime(1, 1, 2, tzinfo=UTC)
TIME_MAX = datetime(9999, 12, 30, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
RAW_REDUCE_LIMIT = 250_000
ROLLUP_WIDTHS_S = (86400, 3600, 300)  # coarsest first
JSON_OPTIONS = orjson.OPT_UTC_Z


def to_us(ts: datetime) -> int:
    """Microseconds since the epoch (exact)."""
    delta = ts - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC datetime of an epoch-microsecond count."""
    return EPOCH + timedelta(microseconds=us)


def page_json(items: list, next_cursor: str | None, extra: dict | None = None) -> bytes:
    """The JSON body of a page (``items`` already camelCase dicts)."""
    body = {"items": items, "nextCursor": next_cursor}
    if extra:
        body.update(extra)
    return orjson.dumps(body, option=JSON_OPTIONS)


def page_from_rows(rows: Sequence[Sequence[bytes | None]], *, after: datetime, before: datetime,
                   limit: int) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """One keyset page from the rows of ``trading.equity_page`` as columns: epoch µs (int64), then
    equity, cash, position qty and price (float64, NaN for null). None when the run has no point
    in the range (it may not exist: the caller checks)."""
    # A block's columns are aggregated together: all null (no point in the range) or all bytes.
    rows = cast(list[Sequence[bytes]], [row for row in rows if row[0] is not None])
    if not rows:
        return None
    packed = rows[0] if len(rows) == 1 else [b"".join(column) for column in zip(*rows, strict=True)]
    stamps, columns = page_columns(packed)
    # Whole blocks come back: keep after < ts < before, then the first `limit`.
    lo = int(np.searchsorted(stamps, to_us(after), side="right"))
    hi = min(int(np.searchsorted(stamps, to_us(before), side="left")), lo + limit)
    return stamps[lo:hi], [c[lo:hi] for c in columns]


def page_columns(packed: Sequence[bytes]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decode the packed columns of ``trading.equity_page`` (int64 µs since 2000, then float8s), in time order.

    The aggregates take their input in the plan's order (the index's); should a plan ever change
    that, the order is restored here rather than trusted.
    """
    stamps = np.frombuffer(packed[0], dtype=">i8") + _PG_EPOCH_US
    columns = [np.frombuffer(column, dtype=">f8").astype(np.float64) for column in packed[1:]]
    if not (stamps[1:] > stamps[:-1]).all():
        order = np.argsort(stamps, kind="stable")
        stamps, columns = stamps[order], [c[order] for c in columns]
    return stamps, columns


# PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800_000_000
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_PREFIXES = (b'{"ts":"', b'Z","equity":', b',"cash":', b',"positionQty":', b',"price":')
_SEPARATORS = (b'","', b",", b",", b",", b",")


def page_body(stamps: np.ndarray, floats: list[np.ndarray], next_cursor: str | None) -> bytes:
    """The JSON body of a page, ``{"items": [...], "nextCursor": ...}``, from its columns.

    ``_rowjson.timestamps`` (C) writes the RFC 3339 times and orjson the floats (shortest round
    trip, NaN as null), which ``_rowjson.decimals`` (C) turns into decimal strings (the API's one
    representation of an amount), each column in one call; ``_rowjson.rows`` (C) lays them out row by row
    between the keys, inside the page's head and tail, in one allocation. No Python object is made
    per point.
    """
    tail = b',"nextCursor":null}' if next_cursor is None else b',"nextCursor":"' + next_cursor.encode() + b'"}'
    if not len(stamps):
        return b'{"items":[]' + tail
    columns = [_rowjson.timestamps(np.ascontiguousarray(stamps, dtype=np.int64), b'","')]
    for column in floats:
        columns.append(_rowjson.decimals(orjson.dumps(column, option=_NUMPY)[1:-1], b","))
    return _rowjson.rows(_PREFIXES, tuple(columns), _SEPARATORS, b"}", len(stamps), head=b'{"items":', tail=tail)


def _amounts(rows: list, first: int) -> list[list[str | None]]:
    """Columns ``first..first+3`` of ``rows`` (equity, cash, position qty, price) as decimal strings, each
    column in one C pass (a null is NaN, written back as null)."""
    if not rows:
        return [[], [], [], []]
    return [float_decimals(np.array([row[j] for row in rows], dtype=np.float64)) for j in range(first, first + 4)]


def point_dicts(rows: list) -> list[dict]:
    """Records (ts, equity, cash, position_qty, price) as response items (amounts as decimal strings)."""
    e, c, q, p = _amounts(rows, 1)
    return [{"ts": row[0], "equity": e[i], "cash": c[i], "positionQty": q[i], "price": p[i]}
            for i, row in enumerate(rows)]


def bot_point_dicts(rows: list) -> list[dict]:
    """Records (run_id, ts, equity, cash, position_qty, price) as response items (amounts as decimal strings)."""
    e, c, q, p = _amounts(rows, 2)
    return [{"runId": row[0], "ts": row[1], "equity": e[i], "cash": c[i], "positionQty": q[i], "price": p[i]}
            for i, row in enumerate(rows)]


@dataclass
class Candidates:
    """Points of one run to reduce: epoch seconds, equity; or the raw points when few enough."""

    t: np.ndarray
    v: np.ndarray
    source: str
    source_points: int
    raw: list | None = None


def _empty(source: str = "raw") -> Candidates:
    return Candidates(np.empty(0), np.empty(0), source, 0, raw=[])


async def candidates(conn: asyncpg.Connection, *, run_id: int, start: datetime, end: datetime,
                     points: int) -> Candidates:
    """The reduction input for one run over [start, end) (see the module docstring)."""
    extent = await repo.equity_extent(conn, run_id=run_id, start=start, end=end)
    if not extent["n"]:
        return _empty()
    lo, hi = max(start, extent["first_at"]), min(end, extent["last_at"] + ONE_US)
    if lo >= hi:
        return _empty()
    estimate = int(extent["n"])
    if estimate <= RAW_REDUCE_LIMIT:
        raw = await repo.raw_points(conn, run_id=run_id, start=lo, end=hi, limit=points + 1)
        if len(raw) <= points:
            return Candidates(np.empty(0), np.empty(0), "raw", len(raw), raw=raw)
    span_s = (hi - lo).total_seconds()
    if estimate <= RAW_REDUCE_LIMIT:
        width = timedelta(microseconds=max(1, int(span_s * 1e6 / points) + 1))
        row = await repo.raw_candidates(conn, run_id=run_id, start=lo, end=hi, width=width)
        return Candidates(np.asarray(row["t"], dtype=np.float64), np.asarray(row["v"], dtype=np.float64),
                          "raw-buckets", int(row["n"]))
    width_s = next((w for w in ROLLUP_WIDTHS_S if span_s / w >= points), ROLLUP_WIDTHS_S[-1])
    first_full = _ceil(lo, width_s)
    last_full = _floor(hi, width_s)
    if first_full >= last_full:
        first_full = last_full = hi
    parts = []
    if first_full < last_full:
        parts.append(await repo.rollup_candidates(conn, run_id=run_id, width_s=width_s, start=first_full,
                                                  end=last_full))
    # Partial buckets at the edges come from the raw points, one bucket each.
    for seg_lo, seg_hi in ((lo, first_full), (max(last_full, lo), hi)):
        if seg_lo < seg_hi:
            parts.append(await repo.raw_candidates(conn, run_id=run_id, start=seg_lo, end=seg_hi,
                                                   width=timedelta(seconds=width_s)))
    t = np.asarray([x for part in parts for x in part["t"]], dtype=np.float64)
    v = np.asarray([x for part in parts for x in part["v"]], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    return Candidates(t[order], v[order], f"rollup-{width_s}s", sum(int(part["n"]) for part in parts))


def _floor(ts: datetime, width_s: int) -> datetime:
    us = to_us(ts)
    return from_us(us - us % (width_s * 1_000_000))


def _ceil(ts: datetime, width_s: int) -> datetime:
    floor = _floor(ts, width_s)
    return floor if floor == ts else floor + timedelta(seconds=width_s)


def reduce_to_items(t: np.ndarray, v: np.ndarray, points: int, method: str,
                    run_ids: np.ndarray | None = None) -> list[dict]:
    """Reduce candidates to ``points`` and build the response items (ts, equity[, runId])."""
    idx = downsample.reduce(t, v, points, method)
    us = np.rint(t[idx] * 1e6).astype(np.int64).tolist()
    values = float_decimals(v[idx])
    if run_ids is None:
        return [{"ts": from_us(u), "equity": e} for u, e in zip(us, values, strict=True)]
    runs = run_ids[idx].tolist()
    return [{"runId": r, "ts": from_us(u), "equity": e} for r, u, e in zip(runs, us, values, strict=True)]


async def run_downsampled(conn: asyncpg.Connection, *, run_id: int, start: datetime, end: datetime,
                          points: int, method: str) -> bytes:
    """The whole [start, end) of a run reduced to at most ``points`` points, as a JSON body."""
    if not await repo.run_exists(conn, run_id=run_id):
        raise NotFound(f"run {run_id} does not exist")
    c = await candidates(conn, run_id=run_id, start=start, end=end, points=points)
    items = point_dicts(c.raw) if c.raw is not None else reduce_to_items(c.t, c.v, points, method)
    info = {"method": method, "requestedPoints": points, "sourcePoints": c.source_points, "source": c.source}
    return page_json(items, None, {"downsample": info})


async def bot_downsampled(conn: asyncpg.Connection, *, bot_id: int, kinds: list[str], start: datetime,
                          end: datetime, points: int, method: str) -> bytes:
    """The bot's runs over [start, end) merged in time and reduced to at most ``points`` points."""
    runs = await repo.bot_run_ids(conn, bot_id=bot_id, kinds=kinds)
    parts = [(run_id, await candidates(conn, run_id=run_id, start=start, end=end, points=points))
             for run_id in runs]
    parts = [(r, c) for r, c in parts if c.source_points]
    total = sum(c.source_points for _, c in parts)
    sources = sorted({c.source for _, c in parts}) or ["raw"]
    info = {"method": method, "requestedPoints": points, "sourcePoints": total, "source": ",".join(sources)}
    if all(c.raw is not None for _, c in parts) and total <= points:
        rows = sorted(((r, *p) for r, c in parts for p in c.raw or ()), key=lambda x: (x[1], x[0]))
        return page_json(bot_point_dicts(rows), None, {"downsample": info})
    ts, vs, rs = [], [], []
    for run_id, c in parts:
        if c.raw is not None:
            t = np.asarray([to_us(p[0]) / 1e6 for p in c.raw], dtype=np.float64)
            v = np.asarray([p[1] for p in c.raw], dtype=np.float64)
        else:
            t, v = c.t, c.v
        ts.append(t)
        vs.append(v)
        rs.append(np.full(t.shape[0], run_id, dtype=np.int64))
    t, v, r = np.concatenate(ts), np.concatenate(vs), np.concatenate(rs)
    order = np.lexsort((r, t))
    return page_json(reduce_to_items(t[order], v[order], points, method, r[order]), None, {"downsample": info})
