"""`gordon-manager backtest`: queue and execute one backtest in this process, print its stats.

Same code path as POST /backtests (``service.create_backtest``, then ``job.execute_run``), minus
the worker process: the run is written to ``trading.runs`` (runner 'cli') with its equity points
and round trips, so the console shows it like any other. Ctrl-C cancels it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from gordon_manager.cli.common import command_database, execution_overrides, fail, json_object, validated


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    days, rest = divmod(int(round(seconds)), 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{days}d {hours:02d}:{rest // 60:02d}" if days else f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _print_stats(run_id: int, outcome) -> None:
    from rich.console import Console
    from rich.table import Table

    s = outcome.stats or {}
    table = Table(title=f"backtest run {run_id}: {outcome.status}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    rows = [
        ("bars", f"{s['bars']:,}"),
        ("exposure", _pct(s["exposure"])),
        ("final equity", f"{s['final_equity']:,.2f}"),
        ("total return", _pct(s["total_return"])),
        ("annualised return (cagr)", _pct(s.get("cagr"))),
        ("buy & hold return", _pct(s.get("buy_hold_return"))),
        ("volatility (annualised)", _pct(s.get("volatility"))),
        ("sharpe (annualised)", _num(s["sharpe"])),
        ("sortino (annualised)", _num(s.get("sortino"))),
        ("calmar", _num(s.get("calmar"))),
        ("max drawdown", _pct(s["max_drawdown"])),
        ("avg drawdown", _pct(s.get("avg_drawdown"))),
        ("max drawdown duration", _duration(s.get("max_drawdown_duration_s"))),
        ("avg drawdown duration", _duration(s.get("avg_drawdown_duration_s"))),
        ("round trips", f"{s['trade_count']:,}"),
        ("win rate", _pct(s["win_rate"])),
        ("best trade", _pct(s.get("best_trade"))),
        ("worst trade", _pct(s.get("worst_trade"))),
        ("avg trade", _pct(s.get("avg_trade"))),
        ("profit factor", _num(s.get("profit_factor"))),
        ("expectancy", _pct(s.get("expectancy"))),
        ("sqn", _num(s.get("sqn"))),
        ("net pnl", s.get("net_pnl", "n/a")),
        ("fees", s["total_fees"]),
    ]
    timings = s.get("timings", {})
    rows += [(f"time: {k.removesuffix('_s').replace('_', ' ')}", f"{v:.3f} s")
             for k, v in timings.items() if k.endswith("_s") and k != "engine_bars_per_s"]
    if "engine_bars_per_s" in timings:
        rows.append(("engine throughput", f"{timings['engine_bars_per_s']:,.0f} bars/s"))
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    if s.get("by_exit_reason"):
        reasons = Table(title="by exit reason")
        for column in ("exit reason", "trades", "win rate", "net pnl", "expectancy"):
            reasons.add_column(column, justify="left" if column == "exit reason" else "right")
        for g in s["by_exit_reason"]:
            reasons.add_row(g["reason"], f"{g['trades']:,}", _pct(g["win_rate"]), g["net_pnl"], _pct(g["expectancy"]))
        console.print(reasons)
    if s.get("by_month"):
        months = Table(title="by month (UTC)")
        for column in ("month", "return", "trades", "net pnl"):
            months.add_column(column, justify="left" if column == "month" else "right")
        for m in s["by_month"]:
            months.add_row(m["month"], _pct(m["return"]), f"{m['trades']:,}", m["net_pnl"])
        console.print(months)


def stats_document(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats as ``GET /runs/{id}`` sends them (``RunStats``: camelCase, money as decimal strings)."""
    from gordon_manager.runs.schemas import RunStats

    return RunStats.model_validate(stats).model_dump(mode="json", by_alias=True)


def backtest(
    strategy: Annotated[str, typer.Option("--strategy", metavar="NAME", help="Strategy name (see GET /strategies).")],
    symbol: Annotated[str, typer.Option("--symbol", metavar="SYMBOL", help="Symbol, e.g. BTCUSDT.")],
    interval: Annotated[str, typer.Option("--interval", metavar="INTERVAL", help="Bar interval, e.g. 1m.")],
    from_: Annotated[str, typer.Option("--from", metavar="TIME", help="Range start, RFC 3339 (inclusive).")],
    to: Annotated[str, typer.Option("--to", metavar="TIME", help="Range end, RFC 3339 (exclusive).")],
    params: Annotated[str, typer.Option("--params", metavar="JSON", help="Strategy params as a JSON object.")] = "{}",
    fee_bps: Annotated[float | None, typer.Option("--fee-bps", metavar="BPS", help="Taker and maker fee (bps).")] = None,
    slippage_bps: Annotated[float | None, typer.Option("--slippage-bps", metavar="BPS", help="Slippage (bps).")] = None,
    initial_cash: Annotated[float | None, typer.Option("--initial-cash", metavar="AMOUNT", help="Starting cash.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the run's stats as JSON (as GET /runs/{id} "
                                                         "has them), no progress bar or table.")] = False,
    export: Annotated[Path | None, typer.Option("--export", metavar="DIR", file_okay=False,
                                                help="Write the run's trades and equity into DIR.")] = None,
    export_format: Annotated[str, typer.Option("--export-format", metavar="FORMAT",
                                               help="csv (default) or parquet.")] = "csv",
) -> None:
    """Run one backtest in this process (written to the database like an API run) and print its stats."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from gordon_manager.backtests import service
    from gordon_manager.backtests.export import FORMATS, Format, export_run
    from gordon_manager.backtests.job import RunJob, execute_run
    from gordon_manager.backtests.schemas import BacktestCreate
    from gordon_manager.db.connect import connect
    from gordon_manager.errors import GordonError

    body = validated(BacktestCreate, {
        "strategy": strategy, "symbol": symbol, "interval": interval, "from": from_, "to": to,
        "params": json_object("--params", params, example='{"fast": 10, "slow": 30}'),
        "execution": execution_overrides(fee_bps=fee_bps, slippage_bps=slippage_bps, initial_cash=initial_cash),
    }, "backtest")
    if export_format not in FORMATS:
        fail(f"--export-format must be one of {', '.join(FORMATS)}")
    fmt = cast(Format, export_format)  # one of FORMATS (checked just above)
    if export_format == "parquet" and export is not None:
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:  # pragma: no cover - pyarrow is part of the test install
            fail("--export-format parquet needs pyarrow: pip install 'gordon-manager[parquet]'")
    settings, url = command_database()
    labels = {"load": "loading bars", "engine": "running", "write": "writing results", "done": "done"}

    async def run():
        conn = await connect(url, timeout=settings.db_connect_timeout_s)
        try:
            row = await service.create_backtest(conn, body=body, actor="cli", runner="cli")
        finally:
            await conn.close()
        job = RunJob(row["id"], url, settings.db_connect_timeout_s)
        if as_json:
            outcome = await execute_run(job)
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True)) as progress:
                task = progress.add_task(f"run {row['id']}: queued", total=1.0)

                def on_phase(phase: str, fraction: float) -> None:  # fraction: the whole run's, never back
                    progress.update(task, description=f"run {row['id']}: {labels.get(phase, phase)}",
                                    completed=fraction)

                outcome = await execute_run(job, on_phase=on_phase)
        paths = {}
        if export is not None and outcome.status == "done":
            conn = await connect(url, timeout=settings.db_connect_timeout_s)
            try:
                paths = await export_run(conn, run_id=row["id"], directory=export, fmt=fmt)
            finally:
                await conn.close()
        return row["id"], outcome, paths

    try:
        run_id, outcome, paths = asyncio.run(run())
    except GordonError as exc:
        fail(exc.detail)
    except KeyboardInterrupt:
        fail("interrupted: the run is marked cancelled", 130)
    if outcome.status != "done":
        fail(f"backtest run {run_id} {outcome.status}" + (f": {outcome.error}" if outcome.error else ""), 1)
    if as_json:
        typer.echo(json.dumps(stats_document(outcome.stats or {})))
        return
    _print_stats(run_id, outcome)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
