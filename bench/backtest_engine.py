"""Benchmark: end-to-end engine throughput on the reference workload.

SMA 10/30 crossover over 200,000 synthetic 1-minute bars held in memory, next-bar-open fills,
0.1% fee, results (equity, fills, decisions, round trips, stats) included; also timed with the events
made into the model's tuples and Decimals (the fast path holds them as whole-number columns until read). Reports the best of N
runs in bars/s, next to a baseline measured in the same process: one trivial numpy pass over the
same bars (buy-and-hold equity and its drawdown), so a slow machine shows up in both numbers.

Run: .venv/bin/python bench/backtest_engine.py [--bars 200000] [--runs 7]
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

import numpy as np

from gordon_manager.backtests import run_backtest
from gordon_manager.execution import Bars, ExecutionConfig
from gordon_manager.marketdata import generate_klines

TARGET = 3_000_000  # bars/s (issue 19)
PARAMS = {"fast": 10, "slow": 30}
CONFIG = ExecutionConfig(
    initial_cash=Decimal("10000"),
    taker_fee_bps=Decimal("10"),
    maker_fee_bps=Decimal("10"),
    slippage_bps=Decimal("0"),
)


def baseline_pass(bars: Bars) -> float:
    """Buy-and-hold equity and max drawdown: a floor for 'touch every bar once with numpy'."""
    equity = 10_000.0 * bars.close / bars.close[0]
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak))


def best_of(runs: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()

    bars = generate_klines(n_bars=args.bars, seed=args.seed, interval="1m")
    n = len(bars)
    run_backtest(bars, "sma_crossover", PARAMS, CONFIG)  # warm caches and imports

    t_engine, result = best_of(args.runs, lambda: run_backtest(bars, "sma_crossover", PARAMS, CONFIG))
    t_made, _ = best_of(args.runs, lambda: run_backtest(bars, "sma_crossover", PARAMS, CONFIG).fills)
    t_base, _ = best_of(args.runs, lambda: baseline_pass(bars))
    engine_rate, base_rate = n / t_engine, n / t_base

    s = result.stats
    print(f"workload      : sma_crossover 10/30, {n:,} synthetic 1m bars (seed {args.seed}), "
          f"fee 0.1%, next-bar-open fills")
    print(f"results       : {len(result.fills):,} fills, {len(result.decisions):,} decisions, "
          f"{s.trade_count:,} round trips, final equity {s.final_equity:,.2f}, fees {s.total_fees}")
    print(f"engine        : best of {args.runs}: {t_engine * 1e3:8.2f} ms  -> {engine_rate:>14,.0f} bars/s")
    print(f"+ events made : best of {args.runs}: {t_made * 1e3:8.2f} ms  -> {n / t_made:>14,.0f} bars/s "
          f"(the run, then its events made into tuples and Decimals)")
    print(f"numpy baseline: best of {args.runs}: {t_base * 1e3:8.2f} ms  -> {base_rate:>14,.0f} bars/s")
    print(f"engine / baseline throughput ratio: {engine_rate / base_rate:.4f} "
          f"(baseline is {base_rate / engine_rate:.1f}x faster)")
    verdict = "PASS" if engine_rate >= TARGET else "FAIL"
    print(f"target >= {TARGET:,} bars/s: {verdict}")


if __name__ == "__main__":
    main()
