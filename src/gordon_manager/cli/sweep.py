"""`gordon-manager sweep`: queue and execute a parameter sweep in this process, print the ranked trials.

``--walk-forward FOLDS`` (with ``--anchored``, ``--test-fraction`` or ``--train-bars``/``--test-bars``) adds a
walk-forward analysis and prints its folds table and the in-sample vs out-of-sample degradation.

Same code path as POST /backtests/sweeps (``sweep_service.create_sweep``, then ``execute_sweep`` on a local
trial pool, or on the Dask cluster of ``--dask-address`` / GORDON_MANAGER_SWEEP_DASK_ADDRESS); the sweep is written to ``trading.backtest_sweeps`` (runner 'cli'), so the API and the console
show it like any other, and any trial can be re-run with POST /backtests/sweeps/{id}/trials/{n}/run.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from gordon_manager.cli.common import command_database, execution_overrides, fail, json_object, validated


def _print_ranked(detail, top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    swept = list(detail.space)
    table = Table(title=f"sweep {detail.id}: {detail.status}, {detail.trials_done}/{detail.trials_total} trials, "
                        f"by {detail.objective}" + (f" (min {detail.min_trades} trades)" if detail.min_trades else ""))
    for name in ("rank", "trial", *swept, detail.objective, "return", "max dd", "sharpe", "trades"):
        table.add_column(name, justify="right")
    for t in detail.trials[:top]:
        s = t.stats

        def cell(value: float | int | None, form: str) -> str:
            return "" if value is None else format(value, form)

        table.add_row("-" if t.rank is None else str(t.rank), str(t.n), *(str(t.params.get(p)) for p in swept),
                      "n/a" if t.value is None else f"{t.value:.4f}",
                      cell(s.total_return, ".2%") if s else "", cell(s.max_drawdown, ".2%") if s else "",
                      cell(s.sharpe, ".3f") if s else "", cell(s.trade_count, ",") if s else (t.error or ""))
    Console().print(table)


def _print_folds(detail) -> None:
    """Two tables (each fits 80 columns): the folds' windows, then their in-sample pick and its out-of-sample
    result; then a line of degradation."""
    from rich.console import Console
    from rich.table import Table

    wf = detail.walk_forward
    swept = list(detail.space)
    console = Console()

    def when(value) -> str:
        return value.strftime("%Y-%m-%d %H:%M")

    def num(value: float | None, form: str = ".4f") -> str:
        return "n/a" if value is None else format(value, form)

    windows = Table(title=f"walk-forward: {wf.folds} {wf.mode} folds (bars: train/test)")
    for name in ("fold", "train from", "test from", "test to", "bars"):
        windows.add_column(name, justify="right", no_wrap=True)
    for f in detail.folds:
        windows.add_row(str(f.fold), when(f.train_from), when(f.test_from), when(f.test_to),
                        f"{f.train_bars:,}/{f.test_bars:,}")
    console.print(windows)
    results = Table(title=f"IS: the best trial in-sample (train); OOS: it out-of-sample (test); by {detail.objective}")
    for name in ("fold", "trial", *swept, "IS", "OOS", "OOS/IS", "OOS ret", "trades"):
        results.add_column(name, justify="right")
    for f in detail.folds:
        oos = f.out_of_sample_stats
        results.add_row(str(f.fold), "-" if f.best_trial is None else str(f.best_trial),
                        *("" if f.params is None else str(f.params.get(p)) for p in swept),
                        num(f.in_sample_value, ".3f"), num(f.out_of_sample_value, ".3f"), num(f.ratio, ".2f"),
                        num(oos.total_return, ".2%") if oos else (f.error or ""),
                        num(oos.trade_count, ",") if oos else "")
    console.print(results)
    d = detail.degradation
    if d is not None:
        console.print(f"degradation over {d.folds_compared}/{d.folds} folds: {detail.objective} in-sample mean "
                      f"{num(d.in_sample_mean)}, out-of-sample mean {num(d.out_of_sample_mean)}; oos/is mean "
                      f"{num(d.ratio_mean, '.2f')}, ratio of means {num(d.ratio_of_means, '.2f')}; "
                      f"out-of-sample return compounded {num(d.out_of_sample_return, '.2%')}",
                      highlight=False, soft_wrap=True)


def sweep(
    strategy: Annotated[str, typer.Option("--strategy", metavar="NAME", help="Strategy name (see GET /strategies).")],
    symbol: Annotated[str, typer.Option("--symbol", metavar="SYMBOL", help="Symbol, e.g. BTCUSDT.")],
    interval: Annotated[str, typer.Option("--interval", metavar="INTERVAL", help="Bar interval, e.g. 1m.")],
    from_: Annotated[str, typer.Option("--from", metavar="TIME", help="Range start, RFC 3339 (inclusive).")],
    to: Annotated[str, typer.Option("--to", metavar="TIME", help="Range end, RFC 3339 (exclusive).")],
    grid: Annotated[str | None, typer.Option("--grid", metavar="JSON",
                                             help='Param → values, e.g. \'{"fast": [5, 10], "slow": [30, 60]}\'.')]
    = None,
    search: Annotated[str | None, typer.Option("--search", metavar="JSON",
                                               help='Random search space, e.g. \'{"fast": {"min": 2, "max": 50}}\'.')]
    = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Random search budget.")] = 100,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random search seed.")] = 0,
    objective: Annotated[str, typer.Option("--objective", help="sharpe, totalReturn, calmar, cagr, winRate, "
                                                               "finalEquity or maxDrawdown.")] = "sharpe",
    min_trades: Annotated[int, typer.Option("--min-trades", min=0, help="Rank only trials with this many "
                                                                       "round trips.")] = 0,
    params: Annotated[str, typer.Option("--params", metavar="JSON", help="Fixed params of every trial.")] = "{}",
    fee_bps: Annotated[float | None, typer.Option("--fee-bps", metavar="BPS", help="Taker and maker fee (bps).")] = None,
    slippage_bps: Annotated[float | None, typer.Option("--slippage-bps", metavar="BPS", help="Slippage (bps).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=0, help="Worker processes (0: in this "
                                                                        "process; default: CPUs - 1, 1..4).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Trials printed.")] = 20,
    walk_forward: Annotated[int | None, typer.Option("--walk-forward", metavar="FOLDS", min=1,
                                                     help="Also run a walk-forward analysis with this many "
                                                          "train/test folds; prints the folds table.")] = None,
    anchored: Annotated[bool, typer.Option("--anchored", help="Walk-forward: anchored train windows (all from "
                                                              "the first bar) instead of rolling ones.")] = False,
    test_fraction: Annotated[float | None, typer.Option("--test-fraction", metavar="F",
                                                        help="Walk-forward: share of the bars tested "
                                                             "out-of-sample over all folds (default 0.2).")] = None,
    train_bars: Annotated[int | None, typer.Option("--train-bars", metavar="N",
                                                   help="Walk-forward: bars of the (first) train window.")] = None,
    test_bars: Annotated[int | None, typer.Option("--test-bars", metavar="N",
                                                  help="Walk-forward: bars of each test window.")] = None,
    dask_address: Annotated[str | None, typer.Option("--dask-address", metavar="ADDRESS",
                                                     help="Run the trials on this Dask scheduler, e.g. "
                                                          "tcp://10.0.0.5:8786 (default: "
                                                          "GORDON_MANAGER_SWEEP_DASK_ADDRESS; unset: local "
                                                          "workers).")] = None,
) -> None:
    """Run a parameter sweep in this process (written to the database like an API sweep); print the ranking."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gordon_manager.backtests import sweep_service
    from gordon_manager.backtests.job import runner_identity
    from gordon_manager.backtests.sweep_schemas import SweepCreate
    from gordon_manager.backtests.worker import default_workers
    from gordon_manager.db.connect import connect
    from gordon_manager.errors import GordonError

    if (grid is None) == (search is None):
        fail("give either --grid or --search")
    raw: dict[str, Any] = {"strategy": strategy, "symbol": symbol, "interval": interval, "from": from_, "to": to,
                           "params": json_object("--params", params),
                           "execution": execution_overrides(fee_bps=fee_bps, slippage_bps=slippage_bps),
                           "objective": objective, "minTrades": min_trades}
    if grid is not None:
        raw["grid"] = json_object("--grid", grid)
    else:
        assert search is not None  # exactly one of --grid and --search (checked above)
        raw["search"] = {"trials": trials, "seed": seed, "space": json_object("--search", search)}
    if walk_forward is not None:
        wf: dict[str, Any] = {"folds": walk_forward, "mode": "anchored" if anchored else "rolling"}
        for key, value in (("testFraction", test_fraction), ("trainBars", train_bars), ("testBars", test_bars)):
            if value is not None:
                wf[key] = value
        raw["walkForward"] = wf
    elif anchored or test_fraction is not None or train_bars is not None or test_bars is not None:
        fail("--anchored, --test-fraction, --train-bars and --test-bars need --walk-forward FOLDS")
    body = validated(SweepCreate, raw, "sweep")
    settings, url = command_database()

    async def run():
        conn = await connect(url, timeout=settings.db_connect_timeout_s)
        try:
            row, dropped = await sweep_service.create_sweep(conn, body=body, actor="cli", runner="cli")
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=Console(stderr=True)) as progress:
                runs = row["trials_total"] * (1 + (walk_forward or 0))  # each fold runs every trial again
                task = progress.add_task(f"sweep {row['id']}", total=runs)
                status = await sweep_service.execute_sweep(
                    conn, sweep_id=row["id"], owner=runner_identity("cli"),
                    workers=default_workers() if workers is None else workers,
                    on_progress=lambda done, total: progress.update(task, completed=done),
                    dask_address=dask_address or settings.sweep_dask_address)
            detail = await sweep_service.get_sweep(conn, sweep_id=row["id"], limit=top)
            return status, dropped, detail
        finally:
            await conn.close()

    try:
        status, dropped, detail = asyncio.run(run())
    except GordonError as exc:
        fail(exc.detail)
    except KeyboardInterrupt:
        fail("interrupted: the sweep is marked cancelled", 130)
    if dropped:
        Console(stderr=True).print(f"{dropped} parameter sets refused by the strategy were not run")
    _print_ranked(detail, top)
    if detail.walk_forward is not None:
        _print_folds(detail)
    if status != "done":
        fail(f"sweep {detail.id} {status}" + (f": {detail.error}" if detail.error else ""), 1)
