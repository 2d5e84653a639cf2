"""Fixtures of the market-data and backtest-run tests: a private migrated database holding
synthetic klines, an app (worker pool included) and a client on it, and Binance-format CSV files.

Imported by the test modules that use them (``from tests.marketdata.fixtures import ...``).
"""

from __future__ import annotations

import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from gordon_manager.db.connect import init_connection
from gordon_manager.execution.bars import Bars
from gordon_manager.marketdata import generate_klines
from gordon_manager.marketdata.importer import import_synthetic
from tests.conftest import Database, create_database, make_settings

# The session's series: BTCUSDT 1m from 2024-01-01, BIG (ETHUSDT 1m) for the long runs.
SERIES_BARS = 20_000
SERIES_SEED = 11
BIG_BARS = 300_000
BIG_SEED = 5
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def at(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def iso(ms: int) -> str:
    """Epoch milliseconds as RFC 3339."""
    return at(ms).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class KlineDb:
    """The private database and the series stored in it."""

    db: Database
    series: Bars  # BTCUSDT 1m
    big: Bars  # ETHUSDT 1m


@pytest.fixture(scope="session")
async def kline_db(pg_server_url: str) -> KlineDb:
    """A migrated database of these tests' own, with two synthetic series imported."""
    db = await create_database(pg_server_url)
    conn = await asyncpg.connect(db.admin_url)
    try:
        await import_synthetic(conn, symbol="BTCUSDT", interval="1m", n_bars=SERIES_BARS, seed=SERIES_SEED)
        await import_synthetic(conn, symbol="ETHUSDT", interval="1m", n_bars=BIG_BARS, seed=BIG_SEED)
    finally:
        await conn.close()
    return KlineDb(db=db, series=generate_klines(n_bars=SERIES_BARS, seed=SERIES_SEED, interval="1m"),
                   big=generate_klines(n_bars=BIG_BARS, seed=BIG_SEED, interval="1m"))


@pytest.fixture
async def kadmin(kline_db: KlineDb) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the private database (jsonb decoded)."""
    conn = await asyncpg.connect(kline_db.db.admin_url)
    await init_connection(conn)
    yield conn
    await conn.close()


@pytest.fixture
async def kapp(kline_db: KlineDb, tmp_path: Path):
    """An app (lifespan running: the backtest runner included) on the private database."""
    from gordon_manager.app import create_app

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    application = create_app(make_settings(kline_db.db, data_dir))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def kclient(kapp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``kapp``."""
    transport = httpx.ASGITransport(app=kapp)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


def binance_lines(bars: Bars, *, micros: bool = False, header: bool = False, step_ms: int = 60_000) -> list[str]:
    """Bars as Binance public-data kline CSV lines (12 columns, 8 decimals like Binance prints)."""
    scale = 1000 if micros else 1
    lines = ["open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
             "taker_buy_quote_volume,ignore"] if header else []
    for ts, o, h, lo, c, v in zip(bars.ts.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                                  bars.close.tolist(), bars.volume.tolist(), strict=True):
        close_time = (ts + step_ms - 1) * scale + (999 if micros else 0)
        lines.append(f"{ts * scale},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{close_time},{v * c:.8f},"
                     f"{int(v * 3) + 1},{v / 2:.8f},{v * c / 2:.8f},0")
    return lines


def write_csv(path: Path, lines: list[str], *, zip_it: bool = False) -> Path:
    """Write lines as a CSV (or a zip holding it, like data.binance.vision serves)."""
    text = "\n".join(lines) + "\n"
    if zip_it:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
