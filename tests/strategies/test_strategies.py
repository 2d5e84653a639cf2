"""Built-in strategies: hand-checked signals, warmup, causality, window invariance."""

from __future__ import annotations

import numpy as np
import pytest

from gordon_manager.execution import Bars
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import StrategySpec, get_strategy, list_strategies


def bars_from_closes(closes: list[float], spread: float = 0.5) -> Bars:
    c = np.array(closes, dtype=float)
    o = np.concatenate(([c[0]], c[:-1]))
    return Bars(np.arange(len(c)) * 60_000, o, np.maximum(o, c) + spread, np.minimum(o, c) - spread, c,
                np.ones(len(c)))


def cases() -> list[tuple[StrategySpec, dict | None]]:
    return [(s, p) for s in list_strategies() for p in (None, *s.examples)]


def test_sma_crossover_hand_example() -> None:
    spec = get_strategy("sma_crossover")
    p = spec.parse_params({"fast": 1, "slow": 3})
    # slow SMA from bar 2: [10, 10, 10, 13, 16, 19] -> closes 10 10 10 19 19 19 then drop
    sig = spec.signals(bars_from_closes([10, 10, 10, 19, 19, 19, 5, 5]), p)
    assert sig.entry.tolist() == [False, False, False, True, False, False, False, False]
    assert sig.exit.tolist() == [False, False, False, False, False, False, True, False]
    assert sig.stop_loss is None and sig.take_profit is None


def test_donchian_hand_example() -> None:
    spec = get_strategy("donchian_breakout")
    p = spec.parse_params({"entry_period": 2, "exit_period": 2, "stop_pct": 0.1, "take_profit_pct": 0.2})
    b = bars_from_closes([10, 10, 10, 12, 12, 9], spread=0.5)
    sig = spec.signals(b, p)
    # bar 3: close 12 > max(high[1..2]) = 10.5; bar 5: close 9 < min(low[3..4]) = 9.5
    assert sig.entry.tolist() == [False, False, False, True, False, False]
    assert sig.exit.tolist() == [False, False, False, False, False, True]
    assert sig.stop_loss[3] == 12 * 0.9 and sig.take_profit[3] == 12 * 1.2


def test_rsi_reversion_hand_example() -> None:
    spec = get_strategy("rsi_reversion")
    p = spec.parse_params({"period": 2, "oversold": 20, "overbought": 80, "stop_pct": 0.05})
    sig = spec.signals(bars_from_closes([10, 11, 10, 9, 8, 9, 10, 11]), p)
    # RSI(2): bar2 50, bar3 0, bar4 0, bar5 50, bar6 100, bar7 100
    assert sig.entry.tolist() == [False, False, False, True, True, False, False, False]
    assert sig.exit.tolist() == [False, False, False, False, False, False, True, True]
    assert sig.stop_loss[3] == 9 * 0.95


@pytest.mark.parametrize(("spec", "params"), cases(), ids=lambda v: getattr(v, "name", str(v)))
def test_warmup_causality_and_window_invariance(spec: StrategySpec, params: dict | None) -> None:
    p = spec.parse_params(params)
    w = spec.warmup(p)
    bars = generate_klines(n_bars=w + 150, seed=11)
    full = spec.signals(bars, p)
    assert not full.entry[: w - 1].any() and not full.exit[: w - 1].any()
    prefix = spec.signals(bars.slice(0, w + 40), p)
    assert np.array_equal(prefix.entry, full.entry[: w + 40])
    for i in range(w - 1, len(bars)):
        tail = spec.signals(bars.slice(i - w + 1, i + 1), p).at(w - 1)
        want = full.at(i)
        assert tail[:2] == want[:2], i
        assert np.array(tail[2:]).tobytes() == np.array(want[2:]).tobytes(), i


def test_signal_shape_is_checked() -> None:
    from gordon_manager.strategies import Signals

    spec = get_strategy("sma_crossover")
    broken = StrategySpec(
        name="broken",
        description="returns the wrong length",
        params_model=spec.params_model,
        signal_fn=lambda bars, p: Signals(entry=np.zeros(1, bool), exit=np.zeros(1, bool)),
        warmup_fn=lambda p: 2,
    )
    with pytest.raises(ValueError, match="shape"):
        broken.signals(bars_from_closes([1.0, 2.0, 3.0]), spec.default_params())
