"""Parity: the vectorized backtest and the bar-by-bar live loop agree exactly.

Same klines in, identical decisions, fills, rejections and round trips out (exact Decimals) and a
bit-identical equity series, for every registered strategy (new ones are picked up from the
registry) with each of its example parameter sets, fees and slippage on. Also: same inputs and
seed give bit-identical results, and the deterministic modules never read a clock or an unseeded
random source.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gordon_manager
from gordon_manager.backtests import BacktestResult, run_backtest
from gordon_manager.botrunner import BarLoop
from gordon_manager.execution import (
    Bars,
    Decision,
    EquityPoint,
    ExecutionConfig,
    Fill,
    Rejection,
    RoundTrip,
)
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import StrategySpec, list_strategies

# Fees, slippage, a coarse tick and lot, and a fraction below 1 so sizing and rounding all matter.
CFG = ExecutionConfig(
    initial_cash=Decimal("10000"),
    taker_fee_bps=Decimal("10"),
    maker_fee_bps=Decimal("4"),
    slippage_bps=Decimal("3"),
    position_fraction=Decimal("0.95"),
    price_step=Decimal("0.01"),
    qty_step=Decimal("0.0001"),
    cash_step=Decimal("0.01"),
)
# All-in with no slippage budget slack: entries after an up-gap get clipped or rejected.
CFG_TIGHT = CFG.model_copy(update={"position_fraction": Decimal("1"), "qty_step": Decimal("1")})

CASES = [(spec, params) for spec in list_strategies() for params in (None, *spec.examples)]


def case_id(case: object) -> str:
    return case.name if isinstance(case, StrategySpec) else "defaults" if case is None else str(case)


def run_loop(bars: Bars, spec: StrategySpec, params: dict | None, cfg: ExecutionConfig) -> dict[type, list]:
    loop = BarLoop(spec.name, params, cfg)
    out: dict[type, list] = {Fill: [], Decision: [], RoundTrip: [], Rejection: [], EquityPoint: []}
    for bar in bars:
        for event in loop.on_bar(bar):
            out[type(event)].append(event)
    return out


def assert_parity(result: BacktestResult, live: dict[type, list]) -> None:
    assert live[Decision] == result.decisions
    assert live[Fill] == result.fills
    assert live[RoundTrip] == result.round_trips
    assert live[Rejection] == result.rejections
    ts = np.array([p.ts for p in live[EquityPoint]], dtype=np.int64)
    equity = np.array([p.equity for p in live[EquityPoint]], dtype=np.float64)
    assert np.array_equal(ts, result.ts)
    assert equity.tobytes() == result.equity.tobytes()  # bit-identical floats


@st.composite
def price_paths(draw: st.DrawFn) -> Bars:
    """Random walks in cents with wicks, gaps between bars and calm/wild stretches."""
    n = draw(st.integers(60, 220))
    vol = draw(st.sampled_from([20, 60, 150]))
    steps = draw(st.lists(st.integers(-vol, vol), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(-vol // 2, vol // 2), min_size=n, max_size=n))
    wick = draw(st.lists(st.tuples(st.integers(0, vol), st.integers(0, vol)), min_size=n, max_size=n))
    price = draw(st.integers(5_000, 20_000))
    rows = []
    for i in range(n):
        o = max(100, price + (gaps[i] if i % 5 == 0 else 0))
        c = max(100, o + steps[i])
        h, lo = max(o, c) + wick[i][0], max(50, min(o, c) - wick[i][1])
        rows.append((i * 60_000, o / 100, h / 100, lo / 100, c / 100, 1.0 + i))
        price = c
    cols = list(zip(*rows, strict=True))
    return Bars(*(np.array(c) for c in cols))


@pytest.mark.parametrize(("spec", "params"), CASES, ids=case_id)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=price_paths(), tight=st.booleans())
def test_parity_on_generated_paths(spec: StrategySpec, params: dict | None, bars: Bars, tight: bool) -> None:
    cfg = CFG_TIGHT if tight else CFG
    assert_parity(run_backtest(bars, spec.name, params, cfg), run_loop(bars, spec, params, cfg))


@pytest.mark.parametrize(("spec", "params"), CASES, ids=case_id)
def test_parity_on_synthetic_klines(spec: StrategySpec, params: dict | None) -> None:
    bars = generate_klines(n_bars=2_500, seed=20240101)
    result = run_backtest(bars, spec.name, params, CFG)
    assert result.fills, "the case should trade"
    assert_parity(result, run_loop(bars, spec, params, CFG))


def gapped(bars: Bars, *, seed: int) -> Bars:
    """The same klines with opens jumping away from the previous close (up to +-0.4%)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    o = np.round(bars.open * (1 + rng.uniform(-0.004, 0.004, len(bars))), 2)
    return Bars(bars.ts, o, np.maximum(bars.high, o), np.minimum(bars.low, o), bars.close, bars.volume)


def spec_named(name: str) -> StrategySpec:
    return next(s for s in list_strategies() if s.name == name)


def test_parity_covers_stops_targets_clipping_and_rejections() -> None:
    """Pin that parity is exercised on every execution path, so a refactor cannot lose one."""
    bars = generate_klines(n_bars=4_000, seed=7, annual_vol=1.5)
    params = {"entry_period": 6, "exit_period": 3, "stop_pct": 0.004, "take_profit_pct": 0.006}
    result = run_backtest(bars, "donchian_breakout", params, CFG)
    assert {t.exit_reason.value for t in result.round_trips} == {"exit", "stop_loss", "take_profit"}
    assert_parity(result, run_loop(bars, spec_named("donchian_breakout"), params, CFG))

    gappy, sma = gapped(bars, seed=1), {"fast": 2, "slow": 5}
    clipped = run_backtest(gappy, "sma_crossover", sma, CFG_TIGHT)
    entries = {d.order_id: d.qty for d in clipped.decisions}
    assert any(f.qty < entries[f.order_id] for f in clipped.fills if f.order_id in entries)
    assert_parity(clipped, run_loop(gappy, spec_named("sma_crossover"), sma, CFG_TIGHT))

    one_lot = CFG_TIGHT.model_copy(update={"initial_cash": Decimal("150")})
    rejected = run_backtest(gappy, "sma_crossover", sma, one_lot)
    assert rejected.rejections and rejected.fills
    assert_parity(rejected, run_loop(gappy, spec_named("sma_crossover"), sma, one_lot))


@pytest.mark.parametrize("spec", list_strategies(), ids=case_id)
def test_same_inputs_and_seed_give_bit_identical_results(spec: StrategySpec) -> None:
    runs = [run_backtest(generate_klines(n_bars=3_000, seed=99), spec.name, None, CFG) for _ in range(2)]
    a, b = runs
    assert a.equity.tobytes() == b.equity.tobytes()
    assert (a.fills, a.decisions, a.round_trips, a.stats) == (b.fills, b.decisions, b.round_trips, b.stats)


DETERMINISTIC = [
    "execution",
    "strategies",
    "backtests/engine.py",
    "stats.py",
    "botrunner/bar_loop.py",
    "marketdata/synth.py",
]
FORBIDDEN = re.compile(
    r"\bimport time\b|\bfrom time\b|datetime\.now|datetime\.utcnow|date\.today|perf_counter|monotonic"
    r"|\bimport random\b|\bfrom random\b|np\.random\.(?!Generator|PCG64)|default_rng\(\)|os\.urandom|uuid4"
)


def test_no_wall_clock_or_unseeded_randomness() -> None:
    root = Path(gordon_manager.__file__).parent
    files = [p for entry in DETERMINISTIC for p in ([root / entry] if entry.endswith(".py")
                                                      else sorted((root / entry).rglob("*.py")))]
    assert len(files) > 10
    offenders = [f"{p.relative_to(root)}: {m.group(0)}" for p in files for m in FORBIDDEN.finditer(p.read_text())]
    assert offenders == []
