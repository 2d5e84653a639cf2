"""Kline reads through v_klines_reader as the service role; the binary COPY codec; write refusals."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import numpy as np
import pytest

from gordon_manager.db.connect import connect
from gordon_manager.errors import ConfigurationError
from gordon_manager.marketdata import generate_klines, pgbinary, repo
from gordon_manager.marketdata.importer import synth_columns, write_columns
from tests.conftest import create_database
from tests.marketdata.fixtures import T0_MS, at, kadmin, kline_db  # noqa: F401


@pytest.fixture
async def as_manager(kline_db):
    conn = await connect(kline_db.db.manager_url)
    yield conn
    await conn.close()


async def test_service_role_loads_bars_through_the_view(as_manager, kline_db):
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.fetchval("SELECT count(*) FROM market_data.klines")
    series = kline_db.series
    # [start, end): bar 100 included, bar 1100 excluded
    bars = await repo.load_bars(as_manager, symbol="BTCUSDT", interval="1m", start=at(int(series.ts[100])),
                                end=at(int(series.ts[1100])))
    expected = series.slice(100, 1100)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        column = getattr(bars, name)
        assert column.dtype == (np.int64 if name == "ts" else np.float64)
        assert np.array_equal(column, getattr(expected, name)), name
    empty = await repo.load_bars(as_manager, symbol="BTCUSDT", interval="5m", start=at(0), end=at(T0_MS * 2))
    assert len(empty) == 0
    assert await repo.has_klines(as_manager, symbol="BTCUSDT", interval="1m", start=at(T0_MS), end=at(T0_MS + 1))
    assert not await repo.has_klines(as_manager, symbol="BTCUSDT", interval="1m", start=at(0), end=at(T0_MS))
    span = await repo.kline_span(as_manager, symbol="BTCUSDT", interval="1m")
    assert (span["bars"], span["first_at"], span["last_at"]) == (len(series), at(T0_MS), at(int(series.ts[-1])))


async def test_a_split_load_reads_what_one_read_does_in_one_snapshot(as_manager, kline_db, kadmin, monkeypatch):
    series = kline_db.series
    extra = [await connect(kline_db.db.manager_url) for _ in range(2)]
    try:
        ranges = [(at(int(series.ts[100])), at(int(series.ts[1100]))),  # [start, end), as load_bars
                  (at(int(series.ts[-5])), at(int(series.ts[-1]) + 10 * 60_000)),  # the last slice past the data
                  (at(0), at(T0_MS))]  # no bars at all
        for start, end in ranges:
            one = await repo.load_bars(as_manager, symbol="BTCUSDT", interval="1m", start=start, end=end)
            for conns in ([as_manager], [as_manager, extra[0]], [as_manager, *extra]):
                split = await repo.load_bars_split(conns, symbol="BTCUSDT", interval="1m", start=start, end=end)
                for name in ("ts", "open", "high", "low", "close", "volume"):
                    assert getattr(split, name).dtype == getattr(one, name).dtype
                    assert np.array_equal(getattr(split, name), getattr(one, name)), (name, len(conns))
        # A bar committed after the snapshot was taken is in no slice (a single read started then would not
        # see it either); a later read does.
        bars = generate_klines(n_bars=20, seed=3, interval="1m", start_ts=T0_MS - 100 * 60_000)
        await write_columns(kadmin, symbol="SNAPUSDT", interval="1m", columns=synth_columns(bars.slice(0, 19), "1m"))
        real = repo._load_columns
        late = synth_columns(bars.slice(19, 20), "1m")
        landed = asyncio.Event()

        async def a_bar_lands_meanwhile(conn, *args):
            if late:  # once, committed before any slice reads
                columns = late.copy()
                late.clear()
                await write_columns(kadmin, symbol="SNAPUSDT", interval="1m", columns=columns)
                landed.set()
            await landed.wait()
            return await real(conn, *args)

        monkeypatch.setattr(repo, "_load_columns", a_bar_lands_meanwhile)
        window = dict(symbol="SNAPUSDT", interval="1m", start=at(int(bars.ts[0])), end=at(int(bars.ts[-1]) + 60_000))
        split = await repo.load_bars_split([as_manager, extra[0]], **window)
        assert len(split) == 19 and not late
        assert len(await repo.load_bars(as_manager, **window)) == 20
    finally:
        for conn in extra:
            await conn.close()


async def test_big_series_loads_fast(as_manager, kline_db):
    started = time.perf_counter()
    bars = await repo.load_bars(as_manager, symbol="ETHUSDT", interval="1m", start=at(0), end=at(T0_MS * 2))
    elapsed = time.perf_counter() - started
    assert len(bars) == len(kline_db.big)
    assert np.array_equal(bars.close, kline_db.big.close)
    # 300k bars; the bench shows 1M in well under 2 s. Generous here: the suite shares the machine.
    assert elapsed < 2.0, f"loading {len(bars)} bars took {elapsed:.2f}s"


async def test_service_role_cannot_import(as_manager, kline_db):
    columns = synth_columns(kline_db.series.slice(0, 10), "1m")
    with pytest.raises(ConfigurationError, match="GORDON_DATABASE_ADMIN_URL"):
        await write_columns(as_manager, symbol="NOPEUSDT", interval="1m", columns=columns)


async def test_unmigrated_database_says_so(pg_server_url, kline_db):
    db = await create_database(pg_server_url, migrated=False)
    conn = await asyncpg.connect(db.admin_url)
    try:
        with pytest.raises(ConfigurationError, match="gordon-manager migrate"):
            await write_columns(conn, symbol="NOPEUSDT", interval="1m", columns=synth_columns(kline_db.series.slice(0, 3), "1m"))
    finally:
        await conn.close()


def test_binary_codec_roundtrip_and_refusals():
    ints = np.array([0, -1, 2**62, 42], dtype=np.int64)
    floats = np.array([0.0, -1.5, 1e300, np.pi])
    stream = pgbinary.encode([("i8", ints), ("f8", floats)])
    a, b = pgbinary.decode(stream, ["i8", "f8"])
    assert np.array_equal(a, ints) and np.array_equal(b, floats)
    assert a.dtype == np.int64 and b.dtype == np.float64 and a.dtype.isnative
    assert [len(c) for c in pgbinary.decode(pgbinary.encode([("i8", ints[:0])]), ["i8"])] == [0]
    with pytest.raises(ValueError, match="not a PostgreSQL binary COPY"):
        pgbinary.decode(b"garbage", ["i8"])
    with pytest.raises(ValueError, match="unexpected size"):
        pgbinary.decode(stream[:-3], ["i8", "f8"])
    with pytest.raises(ValueError, match="field count or a NULL"):
        pgbinary.decode(pgbinary.encode([("f8", floats), ("f8", floats)]).replace(b"\x00\x02\x00", b"\x00\x03\x00", 1),
                        ["f8", "f8"])
    small = np.array([0, -1, 2**31 - 1, 300], dtype=np.int32)
    c, d = pgbinary.decode(pgbinary.encode([("i4", small), ("i8", ints)]), ["i4", "i8"])
    assert np.array_equal(c, small) and c.dtype == np.int32 and np.array_equal(d, ints)
    with pytest.raises(ValueError, match="field count or a NULL"):  # an int8 column read as int4 + padding
        pgbinary.decode(pgbinary.encode([("i8", ints), ("i4", small)]), ["i4", "i8"])
    with pytest.raises(ValueError, match="unsupported column kind"):
        pgbinary.encode([("text", ints)])
    with pytest.raises(ValueError, match="column 1 has 3 values"):
        pgbinary.encode([("i8", ints), ("f8", floats[:3])])


def test_a_stream_in_pieces_is_the_whole_stream():
    ints, floats = np.arange(10, dtype=np.int64), np.linspace(0, 1, 10)
    whole = pgbinary.encode([("i8", ints), ("f8", floats)])
    for chunk_rows, pieces in ((3, 4), (5, 2), (10, 1), (50, 1)):
        stream = list(pgbinary.encode_stream([("i8", ints), ("f8", floats)], chunk_rows))
        assert len(stream) == pieces and b"".join(stream) == whole
    assert list(pgbinary.encode_stream([("i8", ints[:0])], 4)) == [pgbinary.encode([("i8", ints[:0])])]


async def test_binary_codec_matches_postgres(kadmin):
    stream = pgbinary.encode([("i8", np.array([7, -8])), ("f8", np.array([0.1, 2.5])), ("i4", np.array([300, -5]))])
    await kadmin.execute("CREATE TEMP TABLE codec_check (a bigint, b float8, c integer)")
    import io

    await kadmin.copy_to_table("codec_check", source=io.BytesIO(stream), format="binary")
    assert [tuple(r) for r in await kadmin.fetch("SELECT a, b, c FROM codec_check ORDER BY a")] == [(-8, 2.5, -5),
                                                                                                  (7, 0.1, 300)]
    chunks = []

    async def sink(chunk):
        chunks.append(chunk)

    await kadmin.copy_from_query("SELECT a, b FROM codec_check ORDER BY a", output=sink, format="binary")
    a, b = pgbinary.decode(b"".join(chunks), ["i8", "f8"])
    assert a.tolist() == [-8, 7] and b.tolist() == [2.5, 0.1]
