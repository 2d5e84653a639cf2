"""The engine's fast path (backtests.fastpath) against the generic event walk over the reference
ExecutionModel: identical events (value and Decimal representation), ledger and equity, bar for bar,
on random price series, random signals and random configs."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gordon_manager.backtests import engine, fastpath, run_backtest
from gordon_manager.execution import Bars, BpsFeeModel, ExecutionConfig, ExecutionModel
from gordon_manager.marketdata import generate_klines
from gordon_manager.strategies import list_strategies
from gordon_manager.strategies.base import Signals


@st.composite
def price_paths(draw: st.DrawFn) -> Bars:
    """Random walks in cents with wicks and gaps (gaps up clip or reject all-in entries)."""
    n = draw(st.integers(1, 160))
    vol = draw(st.sampled_from([5, 40, 300]))
    steps = draw(st.lists(st.integers(-vol, vol), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(-vol, 2 * vol), min_size=n, max_size=n))
    price = draw(st.integers(150, 5_000_000))
    rows = []
    for i in range(n):
        o = max(100, price + gaps[i])
        c = max(100, o + steps[i])
        rows.append((i * 60_000, o / 100, max(o, c) / 100, min(o, c) / 100, c / 100, 1.0))
        price = c
    return Bars(*(np.array(col) for col in zip(*rows, strict=True)))


def _steps() -> st.SearchStrategy[Decimal]:
    return st.sampled_from([Decimal("1"), Decimal("0.01"), Decimal("0.0001"), Decimal("1E-8"), Decimal("1E+1")])


@st.composite
def configs(draw: st.DrawFn) -> ExecutionConfig:
    bps = st.sampled_from([Decimal(0), Decimal("1"), Decimal("7.5"), Decimal("10"), Decimal("250")])
    return ExecutionConfig(
        initial_cash=draw(st.sampled_from([Decimal("10000"), Decimal("1.5"), Decimal("123456.789"), Decimal("1E+12")])),
        taker_fee_bps=draw(bps), maker_fee_bps=draw(bps), slippage_bps=draw(bps),
        position_fraction=draw(st.sampled_from([Decimal("1"), Decimal("0.95"), Decimal("0.333")])),
        price_step=draw(_steps()), qty_step=draw(_steps()), cash_step=draw(_steps()),
    )


@st.composite
def signals(draw: st.DrawFn, n: int) -> Signals:
    density = draw(st.sampled_from([0.02, 0.2, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return Signals(entry=rng.random(n) < density, exit=rng.random(n) < density)


def _run(bars: Bars, sig: Signals, cfg: ExecutionConfig, fast: bool | str) -> tuple:
    model = ExecutionModel(cfg)
    fills, decisions, trips, rejections = [], [], [], []
    walk = {True: fastpath.run_market_only, "decimal": fastpath.run_decimal, "scaled": fastpath.run_scaled,
            False: engine._walk}[fast]
    segs = walk(model, bars, sig, fills, decisions, trips, rejections, lambda _f: None)
    assert segs is not None, "run_scaled declined the run"
    ledger = (model.cash, model.position, model.fees_paid, model._next_id, model.open_trip)
    return (fills, decisions, trips, rejections, segs, ledger)


def _same(a: object, b: object) -> None:
    assert a == b
    assert repr(a) == repr(b)  # the Decimals' representations (exponents) too


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bars=price_paths(), cfg=configs())
def test_fast_path_equals_generic_walk(data: st.DataObject, bars: Bars, cfg: ExecutionConfig) -> None:
    sig = data.draw(signals(len(bars)))
    assert fastpath.applies(ExecutionModel(cfg), sig)
    slow = _run(bars, sig, cfg, False)
    _same(_run(bars, sig, cfg, "scaled"), slow)  # prices in cents: always in whole steps
    _same(_run(bars, sig, cfg, "decimal"), slow)


@st.composite
def decimal_paths(draw: st.DrawFn) -> Bars:
    """Prices with 0 to 14 decimals (beyond 12, and for values too large for their places, the whole-step
    arithmetic declines and the Decimal path runs), some of them long binary fractions (0.1 + 0.2)."""
    n = draw(st.integers(1, 60))
    places = draw(st.integers(0, 14))
    start = draw(st.sampled_from([0.3, 1.0, 97.13, 41_234.5, 3e6, 1e9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    walk = start * np.exp(np.cumsum(rng.normal(0, 0.02, 2 * n)))
    prices = np.round(walk, places) if places <= 12 else walk
    if draw(st.booleans()):
        prices = prices + 0.1 + 0.2 - 0.3  # binary noise: reprs of 15-17 digits
    prices = np.where(prices > 0, prices, 0.01)
    o, c = prices[0::2], prices[1::2]
    return Bars(np.arange(n) * 60_000, o, np.maximum(o, c), np.minimum(o, c), c, np.ones(n))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bars=decimal_paths(), cfg=configs())
def test_fast_path_with_any_decimals_equals_generic_walk(data: st.DataObject, bars: Bars, cfg: ExecutionConfig) -> None:
    sig = data.draw(signals(len(bars)))
    _same(_run(bars, sig, cfg, True), _run(bars, sig, cfg, False))


def test_whole_steps_decline_what_they_cannot_hold_exactly() -> None:
    n = 40
    sig = Signals(entry=np.arange(n) % 2 == 0, exit=np.arange(n) % 2 == 1)
    cents = np.round(100 + np.arange(n) * 0.37, 2)
    noisy = cents + 1e-9 * np.pi  # more than 12 places
    for prices, cfg, scaled in (
        (cents, ExecutionConfig(), True),
        (noisy, ExecutionConfig(), False),
        (cents, ExecutionConfig(initial_cash=Decimal("1E+40")), False),  # cash beyond _CASH_MAX lots of 1E-8
        (cents, ExecutionConfig(slippage_bps=Decimal("1.0000000000001")), False),  # a 14-digit slippage factor
        (cents, ExecutionConfig(price_step=Decimal("1E-21")), False),  # steps beyond 1E-20 .. 1E+20
        # a sell fee's notional x rate near CTX's 60 digits (the model's product rounds there)
        (np.where(np.arange(n) % 2 == 1, 10089843577033.0, 1.0),
         ExecutionConfig(initial_cash=Decimal("9E+39"), taker_fee_bps=Decimal("999.9999999"), slippage_bps=Decimal(0),
                         price_step=Decimal(1), qty_step=Decimal(1), cash_step=Decimal(1)), False),
    ):
        bars = Bars(np.arange(n) * 60_000, prices, prices, prices, prices, np.ones(n))
        model = ExecutionModel(cfg)
        events: tuple[list, list, list, list] = ([], [], [], [])
        segs = fastpath.run_scaled(model, bars, sig, *events, lambda _f: None)
        assert (segs is not None) is scaled
        if not scaled:  # declined with nothing written and the model as it was
            assert events == ([], [], [], []) and model.cash == cfg.initial_cash and model._next_id == 1
        _same(_run(bars, sig, cfg, True), _run(bars, sig, cfg, False))


@pytest.mark.parametrize("spec", list_strategies(), ids=lambda s: s.name)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bars=price_paths(), cfg=configs())
def test_registered_strategies_same_result_either_way(spec, bars: Bars, cfg: ExecutionConfig) -> None:
    def outcome(params: dict | None, fast_path: bool) -> tuple:
        try:
            r = run_backtest(bars, spec.name, params, cfg, fast_path=fast_path)
        except ValueError as exc:  # e.g. a bracket level that rounds to 0 on a coarse tick: both must say so
            return (repr(exc),)
        return (r.fills, r.decisions, r.round_trips, r.rejections, r.stats, r.equity.tobytes())

    for params in (None, *spec.examples):
        _same(outcome(params, True), outcome(params, False))


def test_reference_workload_is_identical_and_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = generate_klines(n_bars=20_000, seed=7, interval="1m")
    cfg = ExecutionConfig(slippage_bps=Decimal("2"))
    calls = []
    real = fastpath.run_columns
    monkeypatch.setattr(fastpath, "run_columns", lambda *a: calls.append(real(*a)) or calls[-1])
    fast = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 30}, cfg)
    slow = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 30}, cfg, fast_path=False)
    assert len(calls) == 1 and calls[0] is not None  # the fast path, in whole steps
    assert isinstance(fast.events, fastpath.ScaledRun)  # its statistics came from the columns
    assert fast.stats == slow.stats
    assert len(fast.round_trips) > 100  # the tuples, made now
    _same((fast.fills, fast.decisions, fast.round_trips, fast.stats),
          (slow.fills, slow.decisions, slow.round_trips, slow.stats))
    assert fast.equity.tobytes() == slow.equity.tobytes()


def test_fast_path_declines_what_it_cannot_represent() -> None:
    n = 10
    plain = Signals(entry=np.ones(n, bool), exit=np.ones(n, bool))
    assert fastpath.applies(ExecutionModel(ExecutionConfig()), plain)
    bracket = Signals(entry=plain.entry, exit=plain.exit, stop_loss=np.full(n, 90.0))
    assert not fastpath.applies(ExecutionModel(ExecutionConfig()), bracket)
    no_bracket = Signals(entry=plain.entry, exit=plain.exit, stop_loss=np.full(n, np.nan),
                         take_profit=np.full(n, np.nan))
    assert fastpath.applies(ExecutionModel(ExecutionConfig()), no_bracket)
    assert not fastpath.applies(ExecutionModel(ExecutionConfig(price_step=Decimal("0.5"))), plain)
    custom_fee = BpsFeeModel(maker_bps=Decimal(1), taker_bps=Decimal(1), cash_step=Decimal("0.01"))
    assert not fastpath.applies(ExecutionModel(ExecutionConfig(), fee_model=custom_fee), plain)
    busy = ExecutionModel(ExecutionConfig())
    busy.restore(cash=Decimal(1), position=Decimal(1), fees_paid=Decimal(0))
    assert not fastpath.applies(busy, plain)


@pytest.mark.parametrize("qty_step", [Decimal("1"), Decimal("0.001")])
def test_gap_up_clips_and_rejects_the_same_way(qty_step: Decimal) -> None:
    # Entry at every close, exit at every other: each buy is sized at a close of 100 and fills at an
    # open gapped up to 130 (clipped to what cash buys, or rejected when not one lot is affordable).
    n = 40
    closes = np.full(n, 100.0)
    opens = np.where(np.arange(n) % 2 == 1, 130.0, 100.0)
    bars = Bars(np.arange(n) * 60_000, opens, np.maximum(opens, closes), np.minimum(opens, closes), closes,
                np.ones(n))
    sig = Signals(entry=np.arange(n) % 2 == 0, exit=np.arange(n) % 2 == 1)
    cfg = ExecutionConfig(initial_cash=Decimal("120"), qty_step=qty_step, cash_step=Decimal("0.01"),
                          price_step=Decimal("0.01"))
    fast, slow = _run(bars, sig, cfg, True), _run(bars, sig, cfg, False)
    _same(fast, slow)
    fills, _, _, rejections, _, _ = fast
    assert rejections if qty_step == 1 else fills and fills[0].qty < Decimal("1.19")


def test_rebates_and_fee_steps_written_differently_are_not_the_whole_steps_business() -> None:
    bars = generate_klines(n_bars=3_000, seed=5, interval="1m")
    spec = list_strategies()[0].name
    rebate = BpsFeeModel(maker_bps=Decimal("-2.5"), taker_bps=Decimal("-2.5"), cash_step=Decimal("0.01"))
    cfg = ExecutionConfig(cash_step=Decimal("0.01"))
    fast = run_backtest(bars, spec, None, cfg, fee_model=rebate)
    slow = run_backtest(bars, spec, None, cfg, fee_model=rebate, fast_path=False)
    assert not isinstance(fast.events, fastpath.ScaledRun)  # a negative rate: the Decimal path
    assert fast.fills and fast.fills[0].fee < 0
    _same((fast.fills, fast.round_trips, fast.stats), (slow.fills, slow.round_trips, slow.stats))
    # The same cash step written with another exponent: not the fast path at all (the fees' exponent differs).
    other_step = BpsFeeModel(maker_bps=Decimal(10), taker_bps=Decimal(10), cash_step=Decimal("0.010"))
    sig = Signals(entry=np.ones(10, bool), exit=np.ones(10, bool))
    assert not fastpath.applies(ExecutionModel(cfg, fee_model=other_step), sig)


def test_progress_never_goes_back_when_the_whole_steps_decline_part_way(monkeypatch: pytest.MonkeyPatch) -> None:
    # A whole-step run that declines after reporting progress (a value outgrew its guard part way) is redone
    # in Decimal from its start: what the caller sees still only goes forward.
    def declines_half_way(model, bars, sig, checkpoint):
        checkpoint(0.5)
        return None

    monkeypatch.setattr(fastpath, "run_columns", declines_half_way)
    bars = generate_klines(n_bars=20_000, seed=7, interval="1m")
    seen: list[float] = []
    result = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 30}, ExecutionConfig(), progress=seen.append)
    assert 0.5 in seen and seen == sorted(seen) and seen[-1] == 1.0
    assert not isinstance(result.events, fastpath.ScaledRun) and len(result.round_trips) > 100


def test_statistics_and_counts_do_not_make_the_events() -> None:
    from gordon_manager.backtests.writer import stats_json

    bars = generate_klines(n_bars=5_000, seed=3, interval="1m")
    result = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 30}, ExecutionConfig())
    stats = stats_json(result)
    assert "_events" not in result.__dict__  # a sweep's trial keeps these and never makes a tuple
    assert (stats["fill_count"], stats["decision_count"], stats["rejection_count"]) == (
        len(result.fills), len(result.decisions), len(result.rejections))
    assert "_events" in result.__dict__
