"""`gordon-manager data import-klines` and `data synth`, in-process (CliRunner) and as real commands."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from gordon_manager.cli import app as cli_app
from gordon_manager.marketdata import generate_klines
from gordon_manager.settings import get_settings
from tests.marketdata.fixtures import binance_lines, kline_db, write_csv  # noqa: F401

GM = [sys.executable, "-m", "gordon_manager.cli"]
BARS = generate_klines(n_bars=300, seed=77, interval="1m")


@pytest.fixture
def cli_env(kline_db, tmp_path, monkeypatch):
    """Environment of a CLI run against the private database (settings re-read, logging restored)."""
    for key in list(os.environ):
        if key.startswith(("GORDON_", "DOCKER_SOCKET")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GORDON_DATABASE_ADMIN_URL", kline_db.db.admin_url)
    monkeypatch.setenv("GORDON_DATABASE_URL", kline_db.db.manager_url)
    monkeypatch.setenv("GORDON_MANAGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GORDON_MANAGER_LOG_LEVEL", "WARNING")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


def count(url: str, symbol: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT count(*) FROM market_data.klines WHERE symbol = $1", symbol)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_import_klines_command(cli_env, kline_db, tmp_path: Path):
    good = write_csv(tmp_path / "CLIAUSDT-1m-2024-01.csv", binance_lines(BARS, header=True))
    lines = binance_lines(BARS, micros=True)
    lines[41] = "1704067200000,1,2"
    bad = write_csv(tmp_path / "CLIBUSDT-1m-2024-01.csv", lines)
    result = CliRunner().invoke(cli_app, ["data", "import-klines", str(good), str(bad)])
    assert result.exit_code == 1, result.output
    assert "CLIBUSDT-1m-2024-01.csv line 42: expected 12 comma-separated columns, got 3" in result.stderr
    assert "CLIAUSDT" in result.stdout and "300" in result.stdout
    assert count(kline_db.db.admin_url, "CLIAUSDT") == 300
    assert count(kline_db.db.admin_url, "CLIBUSDT") == 0
    again = CliRunner().invoke(cli_app, ["data", "import-klines", "--symbol", "CLIAUSDT", "--interval", "1m", str(good)])
    assert again.exit_code == 0, again.output
    assert count(kline_db.db.admin_url, "CLIAUSDT") == 300


def test_synth_command(cli_env, kline_db):
    result = CliRunner().invoke(cli_app, ["data", "synth", "--symbol", "CLISUSDT", "--interval", "15m", "--bars", "2000",
                                          "--seed", "3", "--start", "2023-06-01"])
    assert result.exit_code == 0, result.output
    assert count(kline_db.db.admin_url, "CLISUSDT") == 2000
    bad = CliRunner().invoke(cli_app, ["data", "synth", "--start", "yesterday"])
    assert bad.exit_code == 2 and "not an RFC 3339 time" in bad.output
    refused = CliRunner().invoke(cli_app, ["data", "synth", "--symbol", "x", "--bars", "5"])
    assert refused.exit_code == 2 and "symbol 'x'" in refused.stderr


def test_commands_report_configuration_errors(cli_env, monkeypatch):
    monkeypatch.setenv("GORDON_DATABASE_ADMIN_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli_app, ["data", "synth", "--bars", "5"])
    assert result.exit_code == 2 and "cannot connect to PostgreSQL at 127.0.0.1:1" in result.stderr
    monkeypatch.setenv("GORDON_MANAGER_DB_POOL_MIN", "zero")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, ["data", "synth", "--bars", "5"])
    assert result.exit_code == 2 and "invalid configuration" in result.stderr


def test_new_user_flow_on_the_embedded_database(tmp_path: Path):
    """No URL at all: `data synth` starts and migrates the embedded server, `backtest` runs on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GORDON_", "DOCKER_SOCKET"))}
    env.update({"GORDON_MANAGER_DATA_DIR": str(tmp_path / "data"), "GORDON_MANAGER_LOG_LEVEL": "WARNING"})
    synth = subprocess.run([*GM, "data", "synth", "--bars", "5000", "--seed", "8"], env=env, capture_output=True,
                           text=True, timeout=180)
    assert synth.returncode == 0, synth.stderr
    assert "BTCUSDT" in synth.stdout and "5,000" in synth.stdout
    run = subprocess.run([*GM, "backtest", "--strategy", "sma_crossover", "--symbol", "BTCUSDT", "--interval", "1m",
                          "--from", "2024-01-01T00:00:00Z", "--to", "2024-01-05T00:00:00Z",
                          "--params", '{"fast": 5, "slow": 20}', "--fee-bps", "7.5"],
                         env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert ": done" in run.stdout and "round trips" in run.stdout and "5,000" in run.stdout


def test_import_klines_reports_spacing(cli_env, kline_db, tmp_path: Path):
    wrong = write_csv(tmp_path / "CLICUSDT-1h-2024-01.csv", binance_lines(BARS))  # 1m bars named 1h
    lines = binance_lines(BARS)
    holed = write_csv(tmp_path / "CLIDUSDT-1m-2024-01.csv", lines[:100] + [lines[99]] + lines[110:])
    result = CliRunner().invoke(cli_app, ["data", "import-klines", str(wrong), str(holed)])
    assert result.exit_code == 1, result.output
    assert "CLICUSDT-1h-2024-01.csv line 2: bars 1m apart where the interval is 1h" in result.stderr
    assert count(kline_db.db.admin_url, "CLICUSDT") == 0
    assert count(kline_db.db.admin_url, "CLIDUSDT") == 290
    out = " ".join(result.stdout.split())
    assert "CLIDUSDT-1m-2024-01.csv: 1 duplicate open time at line 101 (not imported" in out
    assert "CLIDUSDT-1m-2024-01.csv: 1 gap, 10 bars missing (10 before line 102)" in out
