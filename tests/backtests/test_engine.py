"""The vectorized engine on a hand-computed run, plus progress, cancellation and errors."""

from __future__ import annotations

import gc
import threading
from decimal import Decimal

import numpy as np
import pytest

from gordon_manager.backtests import BacktestCancelled, run_backtest
from gordon_manager.backtests.engine import gc_paused
from gordon_manager.execution import (
    Bars,
    Decision,
    ExecutionConfig,
    FeeModel,
    Fill,
    Liquidity,
    OrderReason,
    OrderType,
    Side,
)
from gordon_manager.execution.money import CTX
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import InvalidParams, UnknownStrategy, get_strategy

D = Decimal
CFG = ExecutionConfig(
    initial_cash=D(10000),
    taker_fee_bps=D(10),
    maker_fee_bps=D(2),
    slippage_bps=D(10),
    price_step=D("0.01"),
    qty_step=D("0.001"),
    cash_step=D("0.01"),
)
MIN = 60_000


def bars_from_closes(closes: list[float]) -> Bars:
    c = np.array(closes, dtype=float)
    o = np.concatenate(([c[0]], c[:-1]))
    return Bars(np.arange(len(c)) * MIN, o, np.maximum(o, c) + 0.5, np.minimum(o, c) - 0.5, c, np.ones(len(c)))


def test_hand_computed_sma_run() -> None:
    bars = bars_from_closes([10, 10, 10, 19, 19, 19, 5, 5])
    r = run_backtest(bars, "sma_crossover", {"fast": 1, "slow": 3}, CFG)
    # Entry decided at bar 3's close (19): (10000 - 0.02) / (19.02 x 1.001) -> 525.236 lots.
    assert r.decisions == [
        Decision(3 * MIN, Side.BUY, D("525.236"), OrderType.MARKET, D(19), OrderReason.ENTRY, 1),
        Decision(6 * MIN, Side.SELL, D("525.236"), OrderType.MARKET, D(5), OrderReason.EXIT, 2),
    ]
    buy, sell = r.fills
    # Bar 4 opens at 19: 19 x 1.001 = 19.019 -> 19.02; notional 9989.98872 -> 9989.99; fee 9.99
    assert (buy.ts, buy.price, buy.notional, buy.fee, buy.liquidity) == (
        4 * MIN, D("19.02"), D("9989.99"), D("9.99"), Liquidity.TAKER)
    # Bar 7 opens at 5: 5 x 0.999 = 4.995 -> 4.99; notional 2620.92764 -> 2620.92; fee 2.63
    assert (sell.ts, sell.price, sell.notional, sell.fee) == (7 * MIN, D("4.99"), D("2620.92"), D("2.63"))
    (trip,) = r.round_trips
    assert (trip.gross_pnl, trip.fees, trip.net_pnl, trip.duration_ms) == (
        D("-7369.07"), D("12.62"), D("-7381.69"), 3 * MIN)
    cash_in = 0.02  # 10000 - 9989.99 - 9.99
    assert r.equity.tolist() == [10000.0] * 4 + [cash_in + 525.236 * 19] * 2 + [cash_in + 525.236 * 5, 2618.31]
    assert r.ts.tolist() == bars.ts.tolist()
    s = r.stats
    assert (s.trade_count, s.win_rate, s.total_fees, s.final_equity) == (1, 0.0, D("12.62"), 2618.31)
    assert s.total_return == 2618.31 / 10000 - 1 and s.max_drawdown == 1 - 2618.31 / 10000
    assert s.exposure == 3 / 8 and s.bars == 8 and s.initial_equity == 10000.0
    assert not r.equity.flags.writeable


def test_a_decision_on_the_last_bar_never_fills() -> None:
    r = run_backtest(bars_from_closes([10, 10, 10, 19]), "sma_crossover", {"fast": 1, "slow": 3}, CFG)
    assert len(r.decisions) == 1 and r.fills == [] and r.equity.tolist() == [10000.0] * 4


def test_empty_and_signal_free_runs() -> None:
    empty = Bars(*([],) * 6)
    r = run_backtest(empty, "sma_crossover", None, CFG)
    assert len(r.equity) == 0 and r.stats.final_equity == 10000.0 and r.stats.win_rate is None
    flat = run_backtest(bars_from_closes([10.0] * 50), "rsi_reversion", None, CFG)
    assert flat.fills == [] and set(flat.equity.tolist()) == {10000.0} and flat.stats.sharpe == 0.0


def test_progress_is_monotonic_and_cancellation_stops_the_run() -> None:
    bars = generate_klines(n_bars=20_000, seed=5)
    seen: list[float] = []
    r = run_backtest(bars, "sma_crossover", {"fast": 2, "slow": 5}, CFG, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) > 3 and seen == sorted(seen)
    assert len(r.fills) > 1000
    calls = []

    def cancel_on_third() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(BacktestCancelled):
        run_backtest(bars, "sma_crossover", {"fast": 2, "slow": 5}, CFG, should_cancel=cancel_on_third)
    with pytest.raises(BacktestCancelled):
        run_backtest(bars, "sma_crossover", None, CFG, should_cancel=lambda: True)


def test_the_cyclic_collector_is_paused_for_a_run_and_restored_after() -> None:
    bars = generate_klines(n_bars=2_000, seed=5)
    assert gc.isenabled()
    during: list[bool] = []
    run_backtest(bars, "sma_crossover", {"fast": 2, "slow": 5}, CFG, progress=lambda _f: during.append(gc.isenabled()))
    assert during and not any(during)
    assert gc.isenabled()
    with pytest.raises(BacktestCancelled):  # an exception out of the run restores it too
        run_backtest(bars, "sma_crossover", None, CFG, should_cancel=lambda: True)
    assert gc.isenabled()
    gc.disable()  # a process that turned the collector off keeps it off
    try:
        run_backtest(bars, "sma_crossover", None, CFG)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_concurrent_runs_share_one_pause() -> None:
    # A run in another thread ending first must not turn the collector back on under this one.
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with gc_paused():
        t.start()
        assert inside.wait(10)
        release.set()
        t.join(10)
        assert not t.is_alive() and not gc.isenabled()
    assert gc.isenabled()
    with gc_paused(), gc_paused():  # nested
        assert not gc.isenabled()
    assert gc.isenabled()


def test_errors_are_ours() -> None:
    bars = bars_from_closes([10.0] * 5)
    with pytest.raises(UnknownStrategy):
        run_backtest(bars, "martingale", None, CFG)
    with pytest.raises(InvalidParams):
        run_backtest(bars, "sma_crossover", {"fast": 9, "slow": 3}, CFG)


def test_pluggable_models_and_default_config() -> None:
    class NoFee(FeeModel):
        def fee(self, notional: Decimal, liquidity: Liquidity) -> Decimal:
            return D(0)

    bars = generate_klines(n_bars=2_000, seed=9)
    r = run_backtest(bars, "sma_crossover", None, CFG, fee_model=NoFee())
    assert r.fills and r.stats.total_fees == 0
    d = run_backtest(bars, "sma_crossover", None)
    assert d.config == ExecutionConfig() and d.stats.total_fees > 0


def test_every_exit_path_appears_on_real_data() -> None:
    bars = generate_klines(n_bars=5_000, seed=2)
    params = {"entry_period": 6, "exit_period": 3, "stop_pct": 0.004, "take_profit_pct": 0.006}
    r = run_backtest(bars, "donchian_breakout", params, CFG)
    reasons = {t.exit_reason for t in r.round_trips}
    assert reasons == {OrderReason.EXIT, OrderReason.STOP_LOSS, OrderReason.TAKE_PROFIT}
    # Net PnLs add up to the cash change exactly (flat at the end, or account for the open trip).
    if not r.fills or r.fills[-1].side is Side.SELL:
        assert sum((t.net_pnl for t in r.round_trips), D(0)) == D(str(r.stats.final_equity)) - D(10000)


def _replayed(ts: np.ndarray, fills: list[Fill], initial_cash: Decimal) -> tuple[np.ndarray, np.ndarray]:
    """Cash and position at each bar's close, replaying the fills with the model's arithmetic."""
    cash, qty, out_cash, out_qty = initial_cash, Decimal(0), [], []
    at = 0
    for i in range(len(ts)):
        while at < len(fills) and fills[at].ts <= ts[i]:
            f = fills[at]
            if f.side is Side.BUY:
                cash, qty = CTX.subtract(cash, CTX.add(f.notional, f.fee)), CTX.add(qty, f.qty)
            else:
                cash, qty = CTX.add(cash, CTX.subtract(f.notional, f.fee)), CTX.subtract(qty, f.qty)
            at += 1
        out_cash.append(float(cash))
        out_qty.append(float(qty))
    return np.asarray(out_cash), np.asarray(out_qty)


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("strategy", ["sma_crossover", "donchian_breakout", "rsi_reversion"])
def test_cash_and_position_columns_are_the_ledger_at_each_close(strategy: str, fast_path: bool) -> None:
    # What the writer stores beside the equity: the engine's own segments, equal to a replay of the fills.
    bars = generate_klines(n_bars=3_000, seed=11, interval="1m")
    spec = get_strategy(strategy)
    for params in (None, *spec.examples):
        r = run_backtest(bars, strategy, params, ExecutionConfig(), fast_path=fast_path)
        cash, qty = _replayed(bars.ts, r.fills, r.config.initial_cash)
        assert r.cash.tobytes() == cash.tobytes() and r.qty.tobytes() == qty.tobytes()
        assert r.equity.tobytes() == (r.cash + r.qty * bars.close).tobytes()
