"""Kline imports: Binance public-data CSVs and synthetic series into ``market_data.klines``.

Binance's kline CSV has 12 columns: open_time, open, high, low, close, volume, close_time,
quote_volume, trades, taker_buy_base, taker_buy_quote, ignore; with or without a header line.
Times are epoch milliseconds, or microseconds (files from 2025 on): a value above 1e14 is read as
microseconds, per value. A file is parsed and checked completely before anything is written, and
written in one transaction: a malformed row imports nothing from its file and the error names the
file and line. Rows already stored are skipped (``ON CONFLICT DO NOTHING``), so a re-import
changes nothing.

The bars of a file must be spaced by its interval (from the file name or given): open times are
put on the interval's grid from the file's first bar (calendar months for ``1M``), and a file whose
bars are off that grid, go back in time, or are never one interval apart (a 1h file named ``-1m-``)
is refused with the first line where it differs. Duplicates (the same open time again: the first
row is kept) and gaps (missing bars) are counted and located in the ``ImportResult``, never dropped
silently.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np

from gordon_manager.errors import Unprocessable
from gordon_manager.execution.bars import Bars
from gordon_manager.marketdata import repo
from gordon_manager.marketdata.pgbinary import PG_EPOCH_US
from gordon_manager.marketdata.synth import generate_klines, interval_ms

__all__ = ["ImportResult", "MalformedKlines", "Spacing", "check_spacing", "import_file", "import_synthetic",
           "parse_klines", "read_lines", "series_from_name", "synth_columns"]

SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
INTERVAL = re.compile(r"^[0-9]+[smhdwM]$")
# BTCUSDT-1m-2024-01.csv (monthly) or BTCUSDT-1m-2024-01-15.csv (daily), or the .zip Binance serves.
FILE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]{2,20})-(?P<interval>[0-9]+[smhdwM])-\d{4}-\d{2}(?:-\d{2})?\.(?:csv|zip)$")
N_COLUMNS = 12
MICROS_ABOVE = 1e14  # a ms timestamp stays below this until the year 5138
CHUNK_ROWS = 100_000  # rows per COPY (progress granularity; one transaction per file regardless)
SHOWN = 5  # duplicates and gaps located in a summary
_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}

Progress = Callable[[int, int], None]


class MalformedKlines(Unprocessable):
    """A kline file that cannot be imported; names the file and (when it is about one row) the line."""

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}", extra={"file": source, "line": line})
        self.source, self.line, self.reason = source, line, reason


@dataclass(frozen=True)
class Spacing:
    """Duplicates and gaps of a file's bars (the positions are file line numbers, the first ``SHOWN``).

    ``duplicate_lines``: lines repeating an earlier line's open time (not imported; ``conflicting`` of them
    differ from the row kept). ``gaps``: runs of missing bars, as (the line after the gap, bars missing)."""

    duplicates: int = 0
    conflicting: int = 0
    duplicate_lines: tuple[int, ...] = ()
    missing_bars: int = 0
    gap_count: int = 0
    gaps: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ImportResult:
    """What one import did: rows in the input, rows that were new, the duplicates and gaps found."""

    source: str
    symbol: str
    interval: str
    rows: int
    inserted: int
    spacing: Spacing = Spacing()


def series_from_name(path: Path) -> tuple[str, str] | None:
    """``(symbol, interval)`` from a Binance file name like ``BTCUSDT-1m-2024-01.csv``; None otherwise."""
    match = FILE_NAME.match(path.name)
    return (match["symbol"], match["interval"]) if match else None


def check_series(symbol: str, interval: str) -> None:
    """Unprocessable unless symbol and interval have the shapes the klines table accepts."""
    if not SYMBOL.match(symbol):
        raise Unprocessable(f"symbol {symbol!r} must be 2-20 upper-case letters or digits (e.g. BTCUSDT)")
    if not INTERVAL.match(interval):
        raise Unprocessable(f"interval {interval!r} must look like 1m, 15m, 1h, 1d")


def read_lines(path: Path) -> list[str]:
    """The text lines of a CSV, or of the single CSV inside a ``.zip``."""
    source = path.name
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
                if len(members) != 1:
                    raise MalformedKlines(source, f"a kline zip must hold exactly one .csv file, found {len(members)}")
                raw = archive.read(members[0])
        else:
            raw = path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        raise MalformedKlines(source, f"cannot read the file: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedKlines(source, "not UTF-8 text", line=raw.count(b"\n", 0, exc.start) + 1) from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_row(line: str) -> list[float]:
    """One data line as 11 floats (the ignored 12th column is not read); ValueError saying why."""
    fields = line.split(",")
    if len(fields) != N_COLUMNS:
        raise ValueError(f"expected {N_COLUMNS} comma-separated columns, got {len(fields)}")
    values = []
    for name, field in zip(_NAMES, fields, strict=False):
        try:
            values.append(float(field))
        except ValueError:
            raise ValueError(f"{name} is not a number: {field.strip()[:40]!r}") from None
    return values


_NAMES = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
          "taker_buy_base_volume", "taker_buy_quote_volume")


def _table(data: list[str], source: str, first_line: int) -> np.ndarray:
    """An (n, 11) float64 array of the data lines; MalformedKlines naming the first bad line."""
    counts = np.fromiter((line.count(",") for line in data), dtype=np.int64, count=len(data))
    bad = np.flatnonzero(counts != N_COLUMNS - 1)
    if bad.size:
        i = int(bad[0])
        raise MalformedKlines(source, f"expected {N_COLUMNS} comma-separated columns, got {counts[i] + 1}",
                              line=first_line + i)
    try:
        # numpy's C parser is ~10x faster than Python on a million lines; when it refuses the
        # file, the line-by-line parser finds the line and says why.
        return np.loadtxt(data, delimiter=",", dtype=np.float64, usecols=range(N_COLUMNS - 1), ndmin=2,
                          comments=None)
    except ValueError:
        rows = []
        for i, line in enumerate(data):
            try:
                rows.append(_parse_row(line))
            except ValueError as exc:
                raise MalformedKlines(source, str(exc), line=first_line + i) from None
        return np.asarray(rows, dtype=np.float64).reshape(-1, N_COLUMNS - 1)


def _to_pg_micros(values: np.ndarray) -> np.ndarray:
    unix_us = np.where(values > MICROS_ABOVE, values, values * 1000.0).astype(np.int64)
    return unix_us - PG_EPOCH_US


def first_data_line(lines: list[str]) -> int:
    """The file line number of the first kline: 2 after a header line, else 1."""
    return 2 if lines and not _is_number(lines[0].split(",", 1)[0]) else 1


def parse_klines(lines: list[str], *, source: str) -> dict[str, np.ndarray]:
    """Checked kline columns (``repo.STAGE_COLUMNS``, times in µs since 2000) from CSV lines."""
    first_line = first_data_line(lines)
    if first_line == 2:
        if lines[0].count(",") != N_COLUMNS - 1:
            raise MalformedKlines(source, f"the header must have {N_COLUMNS} columns", line=1)
        lines = lines[1:]
    if not lines:
        raise MalformedKlines(source, "no klines in the file")
    t = _table(lines, source, first_line)
    o, h, lo, c = t[:, 1], t[:, 2], t[:, 3], t[:, 4]
    times, trades = t[:, [0, 6]], t[:, 8]
    volumes = t[:, [5, 7, 9, 10]]
    checks = [
        (~np.isfinite(t).all(axis=1), "a value is not finite"),
        (((times < 0) | (times != np.floor(times))).any(axis=1), "open_time and close_time must be integer epoch ms or µs"),
        ((trades < 0) | (trades != np.floor(trades)), "trades must be a non-negative integer"),
        ((np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0), "prices must be > 0"),
        ((volumes < 0).any(axis=1), "volumes must be >= 0"),
        ((lo > np.minimum(o, c)) | (h < np.maximum(o, c)), "low and high must bound open and close"),
    ]
    bad = np.zeros(t.shape[0], dtype=bool)
    for mask, _ in checks:
        bad |= mask
    if bad.any():
        i = int(np.argmax(bad))
        reason = next(reason for mask, reason in checks if mask[i])
        raise MalformedKlines(source, reason, line=first_line + i)
    open_us, close_us = _to_pg_micros(t[:, 0]), _to_pg_micros(t[:, 6])
    late = np.flatnonzero(close_us < open_us)
    if late.size:
        raise MalformedKlines(source, "close_time is before open_time", line=first_line + int(late[0]))
    return {
        "open_time": open_us, "close_time": close_us, "open": o, "high": h, "low": lo, "close": c,
        "volume": t[:, 5], "quote_volume": t[:, 7], "trades": trades.astype(np.int64),
        "taker_buy_base_volume": t[:, 9], "taker_buy_quote_volume": t[:, 10],
    }


def _duration(us: int) -> str:
    """A spacing in µs as 1h, 1m30s, 250ms, 7d."""
    if us == 0:
        return "0s"
    parts, rest = [], abs(us)
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000),
                       ("ms", 1_000), ("us", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return ("-" if us < 0 else "") + "".join(parts)


def _time(pg_us: int) -> str:
    us = int(pg_us) + PG_EPOCH_US
    unit = "s" if us % 1_000_000 == 0 else "ms" if us % 1000 == 0 else "us"
    return str(np.datetime64(us // {"s": 1_000_000, "ms": 1000, "us": 1}[unit], unit)) + "Z"  # type: ignore[call-overload]  # numpy's stub wants the unit as a literal


def check_spacing(columns: dict[str, np.ndarray], interval: str, *, source: str,
                  first_line: int = 1) -> tuple[dict[str, np.ndarray], Spacing]:
    """The columns without duplicate open times (the first row of each is kept) and the file's spacing report;
    MalformedKlines naming the first line whose bar is off the interval's grid (measured from the first bar),
    goes back in time, or when no two bars are one interval apart (the file has another interval)."""
    open_us = columns["open_time"]
    n = len(open_us)
    if int(interval[:-1]) <= 0:
        raise Unprocessable(f"interval {interval!r} must be at least one unit long")
    if interval.endswith("M"):  # calendar months: bars open at a month's first instant
        months = (open_us + PG_EPOCH_US).astype("datetime64[us]").astype("datetime64[M]")
        off = months.astype("datetime64[us]").astype(np.int64) - PG_EPOCH_US != open_us
        units = months.astype(np.int64) // int(interval[:-1])
        off |= months.astype(np.int64) % int(interval[:-1]) != months[:1].astype(np.int64) % int(interval[:-1])
        step = None
    else:
        step = int(interval[:-1]) * _UNIT_US[interval[-1]]
        rel = open_us - open_us[0]
        off = rel % step != 0
        units = rel // step
    expected = f"the interval is {interval}"
    if off.any():
        i = int(np.argmax(off))
        if i == 0:
            raise MalformedKlines(source, f"open_time {_time(open_us[0])} is not at the start of a month where "
                                          f"{expected}", line=first_line)
        raise MalformedKlines(source, f"bars {_duration(int(open_us[i] - open_us[i - 1]))} apart where {expected} "
                                      f"(open_time {_time(open_us[i])}, the line before {_time(open_us[i - 1])})",
                              line=first_line + i)
    du = np.diff(units)
    back = np.flatnonzero(du < 0)
    if back.size:
        i = int(back[0]) + 1
        raise MalformedKlines(source, f"open_time {_time(open_us[i])} is earlier than the previous line's "
                                      f"({_time(open_us[i - 1])}): the bars must be in time order",
                              line=first_line + i)
    forward = du[du > 0]
    if forward.size and forward.min() > 1:
        i = int(np.argmax(du > 0)) + 1
        spacing = _duration(int(open_us[i] - open_us[i - 1])) if step else f"{int(forward.min())} intervals"
        raise MalformedKlines(source, f"no two bars are one interval apart (at least {spacing}) where {expected}: "
                                      f"the file has another interval (first at open_time {_time(open_us[i])})",
                              line=first_line + i)
    dup = np.flatnonzero(du == 0) + 1
    gap = np.flatnonzero(du > 1) + 1
    report = Spacing()
    if dup.size or gap.size:
        conflicting = 0
        if dup.size:
            kept = np.maximum.accumulate(np.where(np.concatenate(([1], du)) != 0, np.arange(n), 0))
            names = [name for name in columns if name != "open_time"]
            differs = np.zeros(dup.size, dtype=bool)
            for name in names:
                values = columns[name]
                differs |= values[dup] != values[kept[dup]]
            conflicting = int(differs.sum())
        report = Spacing(duplicates=int(dup.size), conflicting=conflicting,
                         duplicate_lines=tuple(int(first_line + i) for i in dup[:SHOWN]),
                         missing_bars=int((du[du > 1] - 1).sum()), gap_count=int(gap.size),
                         gaps=tuple((int(first_line + i), int(du[i - 1] - 1)) for i in gap[:SHOWN]))
    if dup.size:
        keep = np.concatenate(([True], du != 0))
        columns = {name: values[keep] for name, values in columns.items()}
    return columns, report


def synth_columns(bars: Bars, interval: str) -> dict[str, np.ndarray]:
    """Kline columns for generated bars (close time, quote volume, trades and taker volumes derived)."""
    step = interval_ms(interval)
    open_us = bars.ts.astype(np.int64) * 1000 - PG_EPOCH_US
    quote = np.round(bars.volume * (bars.open + bars.close) / 2.0, 8)
    return {
        "open_time": open_us, "close_time": open_us + (step - 1) * 1000, "open": bars.open, "high": bars.high,
        "low": bars.low, "close": bars.close, "volume": bars.volume, "quote_volume": quote,
        "trades": np.maximum(1, np.round(bars.volume * 3.0)).astype(np.int64),
        "taker_buy_base_volume": np.round(bars.volume * 0.5, 8), "taker_buy_quote_volume": np.round(quote * 0.5, 8),
    }


async def write_columns(conn: asyncpg.Connection, *, symbol: str, interval: str, columns: dict[str, np.ndarray],
                        progress: Progress | None = None) -> int:
    """Insert new klines in one transaction (chunked COPYs for progress); returns the new-row count."""
    n = len(columns["open_time"])
    inserted = 0
    async with conn.transaction():
        await repo.create_stage(conn)
        for start in range(0, n, CHUNK_ROWS):
            chunk = {name: values[start:start + CHUNK_ROWS] for name, values in columns.items()}
            inserted += await repo.merge_klines(conn, symbol=symbol, interval=interval, columns=chunk)
            if progress is not None:
                progress(min(n, start + CHUNK_ROWS), n)
    return inserted


async def import_file(conn: asyncpg.Connection, path: Path, *, symbol: str | None = None,
                      interval: str | None = None, progress: Progress | None = None) -> ImportResult:
    """Import one Binance kline CSV (or zip); symbol/interval from the arguments or the file name."""
    named = series_from_name(path)
    symbol = symbol or (named[0] if named else None)
    interval = interval or (named[1] if named else None)
    if symbol is None or interval is None:
        raise MalformedKlines(path.name, "cannot tell its symbol and interval: name it like "
                                         "BTCUSDT-1m-2024-01.csv or pass --symbol and --interval")
    check_series(symbol, interval)
    lines = read_lines(path)
    columns = parse_klines(lines, source=path.name)
    rows = len(columns["open_time"])
    columns, spacing = check_spacing(columns, interval, source=path.name, first_line=first_data_line(lines))
    inserted = await write_columns(conn, symbol=symbol, interval=interval, columns=columns, progress=progress)
    return ImportResult(source=path.name, symbol=symbol, interval=interval, rows=rows, inserted=inserted,
                        spacing=spacing)


async def import_synthetic(conn: asyncpg.Connection, *, symbol: str, interval: str, n_bars: int, seed: int,
                           start_ts: int | None = None, progress: Progress | None = None) -> ImportResult:
    """Generate ``n_bars`` seeded klines (``generate_klines``) and import them."""
    check_series(symbol, interval)
    try:
        kwargs = {} if start_ts is None else {"start_ts": start_ts}
        bars = generate_klines(n_bars=n_bars, seed=seed, interval=interval, **kwargs)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    columns = synth_columns(bars, interval)
    inserted = await write_columns(conn, symbol=symbol, interval=interval, columns=columns, progress=progress)
    return ImportResult(source=f"synthetic(seed={seed})", symbol=symbol, interval=interval, rows=len(bars),
                        inserted=inserted)
