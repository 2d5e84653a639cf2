"""Indicators: hand-computed values and window-position invariance (bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gordon_manager.strategies import indicators
from gordon_manager.strategies.indicators import (
    rolling_max,
    rolling_min,
    rolling_sum,
    rsi_cutler,
    shift,
    sma,
)

nan = np.nan


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_rolling_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert same(rolling_sum(x, 2), [nan, 3, 5, 7])
    assert same(rolling_sum(x, 1), x)
    assert same(rolling_sum(x, 5), [nan] * 4)
    assert same(sma(x, 3), [nan, nan, 2, 3])
    assert same(rolling_max(np.array([3.0, 1, 2, 5, 4]), 2), [nan, 3, 2, 5, 5])
    assert same(rolling_min(np.array([3.0, 1, 2, 5, 4]), 3), [nan, nan, 1, 1, 2])
    assert same(rolling_max(x, 9), [nan] * 4)
    assert same(shift(x, 1), [nan, 1, 2, 3]) and same(shift(x, 0), x) and same(shift(x, 9), [nan] * 4)
    with pytest.raises(ValueError):
        rolling_sum(x, 0)
    with pytest.raises(ValueError):
        shift(x, -1)


def test_rsi_cutler_hand_computed() -> None:
    close = np.array([1.0, 2.0, 1.0, 3.0])
    # n=2 changes: at bar 2 gains 1, losses 1 -> 50; at bar 3 gains 2, losses 1 -> 66.67
    assert same(rsi_cutler(close, 2), [nan, nan, 50.0, 100.0 * 2.0 / 3.0])
    assert same(rsi_cutler(np.array([5.0, 5, 5, 5]), 2), [nan, nan, 50, 50])
    assert same(rsi_cutler(np.array([1.0, 2, 3]), 2), [nan, nan, 100])
    assert same(rsi_cutler(np.array([3.0, 2, 1]), 2), [nan, nan, 0])
    assert same(rsi_cutler(np.array([3.0, 2]), 2), [nan, nan])


prices = st.lists(st.floats(1.0, 1e5, allow_nan=False, allow_infinity=False), min_size=1, max_size=80)


@settings(max_examples=100, deadline=None)
@given(x=prices, n=st.integers(1, 12), data=st.data())
def test_value_at_a_bar_is_the_same_whatever_history_precedes_it(x: list[float], n: int, data) -> None:
    arr = np.array(x)
    full = {
        "sum": rolling_sum(arr, n),
        "max": rolling_max(arr, n),
        "min": rolling_min(arr, n),
        "rsi": rsi_cutler(arr, n),
    }
    for i in range(len(arr)):
        start = data.draw(st.integers(0, i), label="window start")
        win = arr[start : i + 1]
        tails = {
            "sum": rolling_sum(win, n)[-1],
            "max": rolling_max(win, n)[-1],
            "min": rolling_min(win, n)[-1],
            "rsi": rsi_cutler(win, n)[-1],
        }
        for key, value in tails.items():
            need = n + 1 if key == "rsi" else n
            if len(win) >= need:
                assert np.float64(value).tobytes() == full[key][i].tobytes(), (key, i, start)
            else:
                assert np.isnan(value)


def test_a_long_series_computed_in_blocks_is_bit_for_bit_each_windows_own_value() -> None:
    block = indicators._BLOCK
    arr = np.random.default_rng(7).uniform(1.0, 1e5, size=3 * block + 123)
    n = 30
    edges = [n - 1, block + n - 2, block + n - 1, block + n, 2 * block + n - 1, len(arr) - 1]
    for f in (rolling_sum, rolling_max, rolling_min):
        full = f(arr, n)
        assert np.isnan(full[: n - 1]).all() and not np.isnan(full[n - 1 :]).any()
        for i in edges:  # the first window, each side of the block edges, the last
            assert full[i].tobytes() == f(arr[i - n + 1 : i + 1], n)[-1].tobytes(), (f.__name__, i)
