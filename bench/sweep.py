"""Benchmark: a parameter sweep on the local trial pool (issue 19, item 1).

A grid of SMA crossover params (``--fast`` values x ``--slow`` values, 10 x 100 = 1,000 trials by
default) over ``--bars`` synthetic 1-minute bars (100k by default), run the way the manager runs a
sweep: a ``TrialPool`` of spawn workers that receive the bars once, then chunks of (n, params). Each
run includes the pool start. Prints, over ``--runs`` runs (median and worst): seconds and trials/s
with 1 and 2 workers, the 1 → 2 worker speed-up, and — when backtesting.py is importable (the
``bench`` extra) — ``Backtest.optimize`` on the same grid and bars, with the ratio.

``--dask`` also times the same sweep on a Dask cluster (``DaskTrialPool``, as with
GORDON_MANAGER_SWEEP_DASK_ADDRESS): for each worker count, a loopback ``LocalCluster`` of that many
single-threaded worker processes is started (not timed: a cluster outlives a sweep), then each run times
the pool's connect and bar shipping (a WorkerPlugin, once per worker) and the trials; prints the 1 → 2
worker speed-up on Dask next to the local pool's.

No database: the sweep service adds one bar load per sweep and one small UPDATE per finished chunk.

Run: .venv/bin/python bench/sweep.py [--bars 100000] [--fast 10] [--slow 100] [--runs 3] [--workers 1,2]
     [--peer-runs N | --no-peer] [--dask]  (backtesting.py takes ~10 min per run of the full grid on 2 cores)
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from decimal import Decimal

from gordon_manager.backtests.sweep import grid_trials
from gordon_manager.backtests.sweep_cluster import open_pool
from gordon_manager.execution import ExecutionConfig
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import get_strategy

CASH = 1_000_000_000
CONFIG = ExecutionConfig(initial_cash=Decimal(CASH), taker_fee_bps=Decimal("10"), maker_fee_bps=Decimal("10"),
                         slippage_bps=Decimal("0"))


def sweep_once(bars, trials: list[dict], workers: int, dask_address: str | None = None) -> float:
    """Seconds to run every trial on a fresh pool of ``workers`` processes (pool start included), or on the
    Dask cluster at ``dask_address`` (connect and bar shipping included)."""
    started = time.perf_counter()
    with open_pool(bars, "sma_crossover", CONFIG, workers=workers, dask_address=dask_address) as pool:
        size = pool.chunk_size(len(trials))
        indexed = list(enumerate(trials))
        futures = [pool.submit(indexed[i:i + size]) for i in range(0, len(indexed), size)]
        outcomes = [o for f in futures for o in f.result()]
    elapsed = time.perf_counter() - started
    assert len(outcomes) == len(trials) and all(o.stats is not None for o in outcomes)
    return elapsed


def dask_sweeps(bars, trials: list[dict], workers: int, runs: int) -> list[float]:
    """``runs`` timings of the sweep on a fresh loopback Dask cluster of ``workers`` single-threaded worker
    processes (the cluster's start is not timed)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers, timeout=120)
        return [sweep_once(bars, trials, workers, dask_address=cluster.scheduler_address) for _ in range(runs)]


def report(label: str, n_trials: int, medians: dict[int, float], worker_counts: list[int], times_of) -> None:
    """Time each worker count (``times_of(workers)`` -> seconds of each run), print medians and the speed-up."""
    for workers in worker_counts:
        times = times_of(workers)
        med, worst = statistics.median(times), max(times)
        medians[workers] = med
        print(f"{label}{workers} worker(s): median {med:8.2f} s ({n_trials / med:8.1f} trials/s), "
              f"worst {worst:8.2f} s ({n_trials / worst:8.1f} trials/s)")
    if 1 in medians and 2 in medians:
        print(f"{label}speed-up 1 -> 2 workers (median): {medians[1] / medians[2]:.2f}x")

try:  # the bench extra
    from backtesting import Backtest
    from peer_strategies import SmaCross
except ImportError:
    Backtest = None


def _fast_below_slow(p) -> bool:
    return p.fast < p.slow


def backtesting_py(bars, fast: list[int], slow: list[int]) -> float | None:
    """Seconds of backtesting.py's ``Backtest.optimize`` on the same grid (None when not installed); it runs
    its own process pool over every CPU."""
    if Backtest is None:
        return None
    import pandas as pd

    frame = pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                          "Volume": bars.volume}, index=pd.to_datetime(bars.ts, unit="ms"))
    bt = Backtest(frame, SmaCross, cash=CASH, commission=0.001, trade_on_close=False, exclusive_orders=True,
                  finalize_trades=False)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt.optimize(fast=fast, slow=slow, constraint=_fast_below_slow, maximize="Sharpe Ratio")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--fast", type=int, default=10, help="fast values: 5, 10, … (this many)")
    ap.add_argument("--slow", type=int, default=100, help="slow values: 60, 65, … (this many)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="pool sizes to time, comma-separated")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-peer", action="store_true", help="skip backtesting.py")
    ap.add_argument("--peer-runs", type=int, default=None, help="backtesting.py runs (default: --runs)")
    ap.add_argument("--dask", action="store_true", help="also on a loopback Dask cluster of each worker count")
    args = ap.parse_args()

    bars = generate_klines(n_bars=args.bars, seed=args.seed, interval="1m")
    fast = [5 * (i + 1) for i in range(args.fast)]
    slow = [60 + 5 * i for i in range(args.slow)]
    trials, dropped = grid_trials(get_strategy("sma_crossover"), {"fast": fast, "slow": slow})
    print(f"workload : {len(trials):,} trials (sma_crossover grid {args.fast} x {args.slow}, {dropped} refused) "
          f"over {len(bars):,} synthetic 1m bars; {args.runs} runs each, pool start included")
    counts = [int(w) for w in args.workers.split(",")]
    medians: dict[int, float] = {}
    report("local pool, " if args.dask else "", len(trials), medians, counts,
           lambda workers: [sweep_once(bars, trials, workers) for _ in range(args.runs)])
    if args.dask:
        report("dask, ", len(trials), {}, counts, lambda workers: dask_sweeps(bars, trials, workers, args.runs))
    if args.no_peer:
        return
    peer = [backtesting_py(bars, fast, slow) for _ in range(args.peer_runs or args.runs)]
    if peer[0] is None:
        print("backtesting.py: not installed (pip install -e '.[bench]'); no ratio")
        return
    med, worst = statistics.median(peer), max(peer)
    ours = min(medians.values())
    print(f"backtesting.py Backtest.optimize ({len(peer)} run(s), its own pool over every CPU): median {med:8.2f} s ({len(trials) / med:8.1f} trials/s), "
          f"worst {worst:8.2f} s")
    print(f"ratio (backtesting.py / ours, medians, ours with {min(medians, key=medians.get)} worker(s)): "
          f"{med / ours:.1f}x")


if __name__ == "__main__":
    main()
