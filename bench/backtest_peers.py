"""Benchmark: our engine against backtesting.py on the same bars and the same strategy.

Long-only SMA 10/30: buy on a cross up (fast > slow after fast <= slow), close on a cross down,
market orders filled at the next bar's open, 0.1% commission. backtesting.py runs with
trade_on_close=False, exclusive_orders=True and the very same SMA function, so both see identical
signals; the round-trip counts (and entry/exit bar times) must agree. Cash is large so integer
lots in backtesting.py never run out while fees bleed equity.

Ours is timed twice: the run as ``run_backtest`` returns it (equity, statistics, and the events as
exact whole-number columns, see ``backtests.fastpath.ScaledRun``), and the same run with its events
then made into the model's tuples and Decimals (what a consumer reading ``result.fills`` pays once).
backtesting.py's time includes its trades DataFrame (floats).

Run: .venv/bin/python bench/backtest_peers.py [--bars 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import time
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
from backtesting import Backtest
from peer_strategies import SmaCross

from gordon_manager.backtests import run_backtest
from gordon_manager.execution import ExecutionConfig
from gordon_manager.marketdata import generate_klines

CASH = 1_000_000_000
CONFIG = ExecutionConfig(
    initial_cash=Decimal(CASH),
    taker_fee_bps=Decimal("10"),
    maker_fee_bps=Decimal("10"),
    slippage_bps=Decimal("0"),
)


def timed(runs: int, fn):
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()

    bars = generate_klines(n_bars=args.bars, seed=args.seed, interval="1m")
    n = len(bars)
    frame = pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.to_datetime(bars.ts, unit="ms"),
    )

    def ours():
        return run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 30}, CONFIG)

    def theirs():
        bt = Backtest(frame, SmaCross, cash=CASH, commission=0.001, trade_on_close=False,
                      exclusive_orders=True, finalize_trades=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bt.run()

    def ours_made():  # the same run, then its events made into the model's tuples and Decimals
        result = ours()
        result.fills  # noqa: B018 -- reading one makes all four
        return result

    ours()  # warm-up
    t_ours, result = timed(args.runs, ours)
    t_made, _ = timed(args.runs, ours_made)
    t_bt, stats = timed(args.runs, theirs)
    trades = stats["_trades"]

    our_entries = np.array([t.entry_ts for t in result.round_trips], dtype=np.int64)
    our_exits = np.array([t.exit_ts for t in result.round_trips], dtype=np.int64)
    bt_entries = trades["EntryTime"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    bt_exits = trades["ExitTime"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    same_times = np.array_equal(our_entries, bt_entries) and np.array_equal(our_exits, bt_exits)

    print(f"workload        : long-only SMA 10/30, {n:,} synthetic 1m bars (seed {args.seed}), "
          f"fee 0.1%, next-bar-open fills; best of {args.runs}")
    print(f"gordon engine   : {t_ours * 1e3:10.1f} ms -> {n / t_ours:>12,.0f} bars/s, "
          f"{len(result.round_trips):,} round trips")
    print(f"  + events made : {t_made * 1e3:10.1f} ms -> {n / t_made:>12,.0f} bars/s (Fill/Decision/RoundTrip "
          f"tuples and their Decimals, made when first read)")
    print(f"backtesting.py  : {t_bt * 1e3:10.1f} ms -> {n / t_bt:>12,.0f} bars/s, {len(trades):,} round trips")
    print(f"speed ratio (ours / backtesting.py): {t_bt / t_ours:.1f}x; with the events made: {t_bt / t_made:.1f}x")
    agree = len(result.round_trips) == len(trades)
    print(f"round-trip counts agree: {agree}; entry/exit bar times agree: {same_times}")
    if not (agree and same_times):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
