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
    Spacing,
    check_spacing,
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
    hourly = generate_klines(n_bars=50, seed=4, interval="1h")
    path = write_csv(tmp_path / "ZIPUSDT-1h-2024-01-05.zip", binance_lines(hourly, header=True, step_ms=3_600_000),
                     zip_it=True)
    result = await import_file(kadmin, path)
    assert (result.symbol, result.interval, result.inserted) == ("ZIPUSDT", "1h", 50)
    plain = write_csv(tmp_path / "klines.csv", binance_lines(BARS.slice(0, 10)))
    result = await import_file(kadmin, plain, symbol="OPTUSDT", interval="1m")
    assert (result.symbol, result.interval, result.inserted) == ("OPTUSDT", "1m", 10)
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


# -- spacing: the bars must be one interval apart; duplicates and gaps are reported -----------------
async def test_a_minute_file_named_hourly_is_refused_at_its_second_bar(kadmin, tmp_path: Path):
    path = write_csv(tmp_path / "SPCAUSDT-1h-2024-01.csv", binance_lines(BARS.slice(0, 100), header=True))
    with pytest.raises(MalformedKlines) as info:
        await import_file(kadmin, path)
    assert info.value.line == 3  # the header, then the first bar: the second bar is 1m after it
    assert info.value.detail.startswith("SPCAUSDT-1h-2024-01.csv line 3: bars 1m apart where the interval is 1h "
                                        "(open_time 2024-01-01T00:01:00Z, the line before 2024-01-01T00:00:00Z)")
    assert await kadmin.fetchval("SELECT count(*) FROM market_data.klines WHERE symbol = 'SPCAUSDT'") == 0
    # --interval is checked the same way; the right one imports the file
    plain = write_csv(tmp_path / "plain.csv", binance_lines(BARS.slice(0, 100)))
    with pytest.raises(MalformedKlines, match="plain.csv line 2: bars 1m apart where the interval is 5m"):
        await import_file(kadmin, plain, symbol="SPCAUSDT", interval="5m")
    result = await import_file(kadmin, plain, symbol="SPCAUSDT", interval="1m")
    assert (result.inserted, result.spacing) == (100, Spacing())


def test_spacing_off_the_grid_later_in_the_file_names_that_line():
    lines = binance_lines(BARS.slice(0, 50))
    fields = lines[30].split(",")
    fields[0] = str(int(fields[0]) + 30_000)  # 30 s late: off the 1m grid
    fields[6] = str(int(fields[6]) + 30_000)
    lines[30] = ",".join(fields)
    with pytest.raises(MalformedKlines) as info:
        check_spacing(parse_klines(lines, source="f.csv"), "1m", source="f.csv")
    assert info.value.line == 31 and "bars 1m30s apart where the interval is 1m" in info.value.detail


def test_a_coarser_file_named_finer_and_bars_out_of_order_are_refused():
    hourly = generate_klines(n_bars=30, seed=2, interval="1h")
    lines = binance_lines(hourly, step_ms=3_600_000)
    with pytest.raises(MalformedKlines) as info:
        check_spacing(parse_klines(lines, source="f.csv"), "1m", source="f.csv")
    assert info.value.line == 2
    assert "no two bars are one interval apart (at least 1h) where the interval is 1m" in info.value.detail
    assert check_spacing(parse_klines(lines, source="f.csv"), "1h", source="f.csv")[1] == Spacing()
    swapped = binance_lines(BARS.slice(0, 20))
    swapped[7], swapped[8] = swapped[8], swapped[7]
    with pytest.raises(MalformedKlines) as info:
        check_spacing(parse_klines(swapped, source="f.csv"), "1m", source="f.csv")
    assert info.value.line == 9 and "must be in time order" in info.value.detail


def test_duplicates_and_gaps_are_counted_and_located():
    lines = binance_lines(BARS.slice(0, 100))
    changed = lines[20].split(",")
    changed[4] = f"{float(changed[4]) * 1.0001:.8f}"  # another close: a conflicting duplicate
    changed[2] = f"{max(float(changed[2]), float(changed[4])):.8f}"
    # lines (1-based): 1..10 bars 0..9, 11 = bar 9 again, 12..21 bars 10..19, 22 = bar 20 altered copy...
    data = lines[:10] + [lines[9]] + lines[10:21] + [",".join(changed)] + lines[21:40] + lines[43:60] + lines[61:100]
    columns = parse_klines(data, source="f.csv")
    kept, report = check_spacing(columns, "1m", source="f.csv")
    assert report == Spacing(duplicates=2, conflicting=1, duplicate_lines=(11, 23), missing_bars=4, gap_count=2,
                             gaps=((43, 3), (60, 1)))
    assert len(kept["open_time"]) == len(data) - 2 == 96
    assert np.array_equal(kept["open_time"], np.unique(columns["open_time"]))
    assert kept["close"][20] == columns["close"][21]  # the first row of a repeated time is kept


def test_many_duplicates_show_the_first_few_lines():
    lines = binance_lines(BARS.slice(0, 30))
    doubled = [line for line in lines for _ in range(2)]
    _, report = check_spacing(parse_klines(doubled, source="f.csv"), "1m", source="f.csv", first_line=2)
    assert (report.duplicates, report.conflicting, report.duplicate_lines) == (30, 0, (3, 5, 7, 9, 11))


def test_monthly_bars_follow_the_calendar():
    starts = ["2024-01-01", "2024-02-01", "2024-03-01", "2024-05-01"]
    ms = [int(np.datetime64(d, "ms").astype(np.int64)) for d in starts]
    template = binance_lines(BARS.slice(0, 1))[0].split(",")
    lines = [",".join([str(t), *template[1:6], str(t + 1000), *template[7:]]) for t in ms]
    _, report = check_spacing(parse_klines(lines, source="m.csv"), "1M", source="m.csv")
    assert (report.gap_count, report.missing_bars, report.gaps) == (1, 1, ((4, 1),))
    late = lines[:2] + [lines[2].replace(str(ms[2]), str(ms[2] + 3_600_000), 1)]
    with pytest.raises(MalformedKlines) as info:
        check_spacing(parse_klines(late, source="m.csv"), "1M", source="m.csv")
    assert info.value.line == 3


async def test_import_reports_duplicates_and_gaps(kadmin, tmp_path: Path):
    lines = binance_lines(BARS.slice(0, 60))
    data = lines[:30] + [lines[29]] + lines[35:]
    result = await import_file(kadmin, write_csv(tmp_path / "SPCBUSDT-1m-2024-01.csv", data))
    assert (result.rows, result.inserted) == (56, 55)
    assert result.spacing == Spacing(duplicates=1, duplicate_lines=(31,), missing_bars=5, gap_count=1,
                                     gaps=((32, 5),))
    assert await kadmin.fetchval("SELECT count(*) FROM market_data.klines WHERE symbol = 'SPCBUSDT'") == 55
