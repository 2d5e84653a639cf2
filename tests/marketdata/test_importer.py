"""Binance kline CSV imports: formats (header or not, ms or µs, zip), idempotence, malformed rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from gordon_manager.errors import Unprocessable
from gordon_manager.marketdata import generate_klines, repo
from gordon_manager.marketdata.importer import (
    MalformedKlines,
    import_file,
    import_synthetic,
    parse_klines,
    read_lines,
    series_from_name,
)
from tests.marketdata.fixtures import at, binance_lines, kadmin, kline_db, write_csv  # noqa: F401

BARS = generate_klines(n_bars=500, seed=42, interval="1m")
ALL = (at(0), datetime(2100, 1, 1, tzinfo=at(0).tzinfo))


async def stored(conn, symbol: str, interval: str = "1m"):
    return await repo.load_bars(conn, symbol=symbol, interval=interval, start=ALL[0], end=ALL[1])


def assert_same_bars(a, b) -> None:
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("header", [False, True])
@pytest.mark.parametrize("micros", [False, True])
async def test_import_roundtrips_bit_for_bit(kadmin, tmp_path: Path, header: bool, micros: bool):
    symbol = f"R{int(header)}{int(micros)}USDT"
    path = write_csv(tmp_path / f"{symbol}-1m-2024-01.csv", binance_lines(BARS, header=header, micros=micros))
    result = await import_file(kadmin, path)
    assert (result.symbol, result.interval, result.rows, result.inserted) == (symbol, "1m", 500, 500)
    assert_same_bars(await stored(kadmin, symbol), BARS)
    row = await kadmin.fetchrow(
        "SELECT close_time, quote_volume, trades FROM market_data.klines WHERE symbol = $1 ORDER BY open_time LIMIT 1",
        symbol)
    assert row["close_time"] == at(int(BARS.ts[0]) + 59_999) if not micros else row["close_time"] > at(int(BARS.ts[0]))
    assert row["trades"] == int(BARS.volume[0] * 3) + 1


async def test_reimport_changes_nothing_and_overlap_adds_only_new_bars(kadmin, tmp_path: Path):
    first = write_csv(tmp_path / "IDEMUSDT-1m-2024-01.csv", binance_lines(BARS.slice(0, 300)))
    assert (await import_file(kadmin, first)).inserted == 300
    before = await kadmin.fetch("SELECT * FROM market_data.klines WHERE symbol = 'IDEMUSDT' ORDER BY open_time")
    again = await import_file(kadmin, first)
    assert (again.rows, again.inserted) == (300, 0)
    after = await kadmin.fetch("SELECT * FROM market_data.klines WHERE symbol = 'IDEMUSDT' ORDER BY open_time")
    assert [tuple(r) for r in before] == [tuple(r) for r in after]
    overlap = write_csv(tmp_path / "IDEMUSDT-1m-2024-02.csv", binance_lines(BARS.slice(200, 500)))
    assert (await import_file(kadmin, overlap)).inserted == 200
    assert_same_bars(await stored(kadmin, "IDEMUSDT"), BARS)


async def test_zip_and_explicit_series(kadmin, tmp_path: Path):
    path = write_csv(tmp_path / "ZIPUSDT-1h-2024-01-05.zip", binance_lines(BARS.slice(0, 50), header=True), zip_it=True)
    result = await import_file(kadmin, path)
    assert (result.symbol, result.interval, result.inserted) == ("ZIPUSDT", "1h", 50)
    plain = write_csv(tmp_path / "klines.csv", binance_lines(BARS.slice(0, 10)))
    result = await import_file(kadmin, plain, symbol="OPTUSDT", interval="5m")
    assert (result.symbol, result.interval, result.inserted) == ("OPTUSDT", "5m", 10)
    with pytest.raises(MalformedKlines, match="cannot tell its symbol and interval"):
        await import_file(kadmin, plain)
    with pytest.raises(Unprocessable, match="symbol 'btc'"):
        await import_file(kadmin, plain, symbol="btc", interval="1m")
    with pytest.raises(Unprocessable, match="interval 'one'"):
        await import_file(kadmin, plain, symbol="BTCUSDT", interval="one")


async def test_malformed_row_names_file_and_line_and_imports_nothing_from_it(kadmin, tmp_path: Path):
    lines = binance_lines(BARS.slice(0, 200), header=True)
    lines[150] = lines[150].replace(",", ",x", 1)  # line 151 of the file: open is not a number
    path = write_csv(tmp_path / "BADUSDT-1m-2024-01.csv", lines)
    with pytest.raises(MalformedKlines) as info:
        await import_file(kadmin, path)
    assert info.value.detail.startswith("BADUSDT-1m-2024-01.csv line 151: open is not a number")
    assert (info.value.source, info.value.line) == ("BADUSDT-1m-2024-01.csv", 151)
    assert await kadmin.fetchval("SELECT count(*) FROM market_data.klines WHERE symbol = 'BADUSDT'") == 0


async def test_failed_write_rolls_the_whole_file_back(kadmin, tmp_path: Path, monkeypatch):
    from gordon_manager.marketdata import importer

    monkeypatch.setattr(importer, "CHUNK_ROWS", 100)
    calls = []
    real = repo.merge_klines

    async def flaky(conn, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return await real(conn, **kwargs)

    monkeypatch.setattr(repo, "merge_klines", flaky)
    path = write_csv(tmp_path / "TXNUSDT-1m-2024-01.csv", binance_lines(BARS))
    with pytest.raises(RuntimeError):
        await import_file(kadmin, path)
    assert await kadmin.fetchval("SELECT count(*) FROM market_data.klines WHERE symbol = 'TXNUSDT'") == 0


def good() -> list[str]:
    return binance_lines(BARS.slice(0, 5))


@pytest.mark.parametrize(("edit", "line", "reason"), [
    (lambda ls: ls.__setitem__(2, ls[2] + ",7"), 3, "expected 12 comma-separated columns, got 13"),
    (lambda ls: ls.__setitem__(1, ""), 2, "expected 12 comma-separated columns, got 1"),
    (lambda ls: ls.__setitem__(4, ls[4].replace(ls[4].split(",")[3], "abc", 1)), 5, "low is not a number: 'abc'"),
    (lambda ls: ls.__setitem__(0, "1.5" + ls[0][ls[0].index(","):]), 1, "integer epoch"),
    (lambda ls: ls.__setitem__(1, ls[1].replace(ls[1].split(",")[1], "nan", 1)), 2, "not finite"),
    (lambda ls: ls.__setitem__(1, ",".join("-1" if i == 8 else f for i, f in enumerate(ls[1].split(",")))),
     2, "trades must be a non-negative integer"),
    (lambda ls: ls.__setitem__(3, ",".join("0" if i == 4 else f for i, f in enumerate(ls[3].split(",")))),
     4, "prices must be > 0"),
    (lambda ls: ls.__setitem__(3, ",".join("-2" if i == 5 else f for i, f in enumerate(ls[3].split(",")))),
     4, "volumes must be >= 0"),
    (lambda ls: ls.__setitem__(2, ",".join("99999" if i == 1 else f for i, f in enumerate(ls[2].split(",")))),
     3, "low and high must bound open and close"),
    (lambda ls: ls.__setitem__(2, ",".join("5" if i == 6 else f for i, f in enumerate(ls[2].split(",")))),
     3, "close_time is before open_time"),
])
def test_malformed_rows(edit, line, reason):
    lines = good()
    edit(lines)
    with pytest.raises(MalformedKlines) as info:
        parse_klines(lines, source="f.csv")
    assert info.value.line == line
    assert reason in info.value.detail
    assert info.value.detail.startswith(f"f.csv line {line}: ")


def test_header_and_empty_files():
    with pytest.raises(MalformedKlines, match="line 1: the header must have 12 columns"):
        parse_klines(["open_time,open,high"] + good(), source="f.csv")
    with pytest.raises(MalformedKlines, match="no klines"):
        parse_klines(["open_time,open,high,low,close,volume,close_time,qv,n,tb,tq,ignore"], source="f.csv")
    with pytest.raises(MalformedKlines, match="no klines"):
        parse_klines([], source="f.csv")


def test_timestamp_units_are_per_value():
    ms = good()
    mixed = [ms[0]] + binance_lines(BARS.slice(1, 5), micros=True)  # Binance switched to µs in 2025
    a, b = parse_klines(ms, source="a"), parse_klines(mixed, source="b")
    assert np.array_equal(a["open_time"], b["open_time"])


def test_read_lines(tmp_path: Path):
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(("\r\n".join(good()) + "\r\n\r\n").encode())
    assert read_lines(crlf) == good()
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"\n".join(line.encode() for line in good()) + b"\n\xe9t\xe9\n")
    with pytest.raises(MalformedKlines, match="latin.csv line 6: not UTF-8 text"):
        read_lines(latin)
    two = tmp_path / "two.zip"
    import zipfile

    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(MalformedKlines, match="exactly one .csv file, found 2"):
        read_lines(two)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(MalformedKlines, match="cannot read the file"):
        read_lines(broken)


def test_series_from_name():
    assert series_from_name(Path("BTCUSDT-1m-2024-01.csv")) == ("BTCUSDT", "1m")
    assert series_from_name(Path("/x/ETHBTC-4h-2025-03-07.zip")) == ("ETHBTC", "4h")
    assert series_from_name(Path("btcusdt-1m-2024-01.csv")) is None
    assert series_from_name(Path("BTCUSDT-1m.csv")) is None


async def test_synthetic_import_is_seeded(kadmin):
    first = await import_synthetic(kadmin, symbol="SYNAUSDT", interval="5m", n_bars=1000, seed=9,
                                   start_ts=1_600_000_000_000)
    again = await import_synthetic(kadmin, symbol="SYNAUSDT", interval="5m", n_bars=1000, seed=9,
                                   start_ts=1_600_000_000_000)
    assert (first.inserted, again.inserted) == (1000, 0)
    expected = generate_klines(n_bars=1000, seed=9, interval="5m", start_ts=1_600_000_000_000)
    assert_same_bars(await stored(kadmin, "SYNAUSDT", "5m"), expected)
    with pytest.raises(Unprocessable, match="unknown interval"):
        await import_synthetic(kadmin, symbol="SYNAUSDT", interval="7m", n_bars=10, seed=1)
