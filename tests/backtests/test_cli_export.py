"""`gordon-manager backtest --json` and `--export DIR` (issue 19, item 5)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from gordon_manager.cli import app as cli_app
from tests.backtests.test_worker import backtest_args, cli_env, fetch  # noqa: F401
from tests.marketdata.fixtures import kline_db  # noqa: F401

LAST_CLI_RUN = "SELECT id, stats::text FROM trading.runs WHERE runner = 'cli' ORDER BY id DESC LIMIT 1"


def last_stats(kline_db) -> dict:
    return json.loads(fetch(kline_db.db.admin_url, LAST_CLI_RUN)["stats"])


def test_json_prints_only_the_stats_as_the_api_has_them(cli_env, kline_db):
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--params", '{"fast": 5, "slow": 20}', "--json"))
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)  # nothing else on stdout
    stored = last_stats(kline_db)
    assert stats["tradeCount"] == stored["trade_count"] > 0 and stats["sqn"] == stored["sqn"]
    assert stats["netPnl"] == stored["net_pnl"] and stats["maxDrawdownDurationS"] == stored["max_drawdown_duration_s"]
    assert [m["month"] for m in stats["byMonth"]] == [m["month"] for m in stored["by_month"]]
    assert set(stats["timings"]) >= {"loadBarsS", "engineS", "writeEquityS", "writeRoundtripsS", "totalS"}
    assert "backtest run" not in result.stdout


def test_the_table_shows_every_statistic_and_phase_time(cli_env, kline_db):
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--params", '{"fast": 5, "slow": 20}'))
    assert result.exit_code == 0, result.output
    for name in ("annualised return", "buy & hold return", "volatility", "sortino", "calmar", "avg drawdown",
                 "max drawdown duration", "avg drawdown duration", "best trade", "worst trade", "avg trade",
                 "profit factor", "expectancy", "sqn", "net pnl", "by exit reason", "by month (UTC)",
                 "time: load bars", "time: engine", "time: write equity", "time: write roundtrips", "time: total"):
        assert name in result.stdout, name


def test_export_writes_trades_and_equity_csv(cli_env, kline_db, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--params", '{"fast": 5, "slow": 20}',
                                                       "--export", str(out)))
    assert result.exit_code == 0, result.output
    stored = last_stats(kline_db)
    with (out / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    assert len(equity) == stored["bars"] == 4000
    assert list(equity[0]) == ["ts", "equity", "cash", "position_qty", "price"]
    assert equity[0]["ts"].endswith("+00") and float(equity[-1]["equity"]) == stored["final_equity"]
    with (out / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert len(trades) == stored["trade_count"] > 0
    assert sum(Decimal(t["net_pnl"]) for t in trades) == Decimal(stored["net_pnl"])
    best = max(float(t["return"]) for t in trades)
    assert best == pytest.approx(stored["best_trade"], rel=1e-12)
    assert f"trades: {out / 'trades.csv'}" in result.stdout


def test_export_parquet(cli_env, kline_db, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--params", '{"fast": 5, "slow": 20}', "--json",
                                                       "--export", str(tmp_path), "--export-format", "parquet"))
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    equity = pq.read_table(tmp_path / "equity.parquet")
    trades = pq.read_table(tmp_path / "trades.parquet")
    assert equity.num_rows == stats["bars"] and trades.num_rows == stats["tradeCount"]
    assert str(equity.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(equity.schema.field("equity").type) == "double"
    assert sum(Decimal(v) for v in trades.column("net_pnl").to_pylist()) == Decimal(stats["netPnl"])


def test_an_unknown_export_format_is_refused(cli_env, kline_db, tmp_path):
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--export", str(tmp_path), "--export-format", "xlsx"))
    assert result.exit_code == 2 and "--export-format must be one of csv, parquet" in result.stderr


def test_durations_and_missing_figures_in_the_table():
    from gordon_manager.cli.backtest import _duration, _num, _pct

    assert (_duration(None), _pct(None), _num(None)) == ("n/a", "n/a", "n/a")
    assert (_duration(59.6), _duration(3 * 86_400 + 3_725)) == ("00:01:00", "3d 01:02")
