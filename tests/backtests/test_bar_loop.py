"""BarLoop: the live side of the parity pair (no IO, validated input, bounded history)."""

from __future__ import annotations

import pytest

from gordon_manager.botrunner import BarLoop
from gordon_manager.execution import Bar, Decision, EquityPoint, ExecutionConfig, Fill, RoundTrip
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import get_strategy


def test_event_order_and_bounded_history() -> None:
    loop = BarLoop(get_strategy("sma_crossover"), {"fast": 2, "slow": 4}, ExecutionConfig())
    assert loop.window == 5 and loop.params.fast == 2
    kinds: list[list[type]] = []
    bars = generate_klines(n_bars=400, seed=8)
    for i, bar in enumerate(bars):
        assert loop.warmed_up == (i >= 5)
        kinds.append([type(e) for e in loop.on_bar(bar)])
    assert loop.bars_seen == 400
    hist = loop.history
    assert len(hist) == 5 and hist.ts.tolist() == bars.ts[-5:].tolist()
    for ks in kinds:
        eq = ks.index(EquityPoint)
        assert set(ks[:eq]) <= {Fill, RoundTrip} and set(ks[eq + 1 :]) <= {Decision}
    assert any(Decision in ks for ks in kinds) and any(RoundTrip in ks for ks in kinds)


def test_input_is_validated() -> None:
    loop = BarLoop("rsi_reversion")
    loop.on_bar(Bar(60_000, 1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="not after"):
        loop.on_bar(Bar(60_000, 1.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        loop.on_bar(Bar(120_000, 1.0, 0.5, 1.0, 1.0))
    assert len(loop.history) == 1
