"""LTTB and min/max reduction: sizes, endpoints, extremes, real points, and LTTB's choice on a known case."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gordon_manager.runs import downsample

series = st.integers(min_value=0, max_value=2000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=2**31), st.integers(min_value=3, max_value=300)))


def make(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.uniform(0.1, 2.0, n)), np.cumsum(rng.normal(0, 1, n))


@settings(max_examples=150, deadline=None)
@given(series, st.sampled_from(["lttb", "minmax"]))
def test_reduction_properties(case, method):
    n, seed, n_out = case
    x, y = make(n, seed)
    idx = downsample.reduce(x, y, n_out, method)
    assert np.all(np.diff(idx) > 0)  # sorted, unique, real indices
    if n <= n_out:
        assert idx.tolist() == list(range(n))
        return
    assert idx[0] == 0 and idx[-1] == n - 1
    assert int(np.argmin(y)) in idx and int(np.argmax(y)) in idx
    # LTTB keeps n_out points, min/max two per bucket; at most both extremes are added
    assert len(idx) <= n_out + 2


def test_lttb_keeps_the_spike_and_returns_exactly_n_points():
    x = np.arange(100, dtype=float)
    y = np.zeros(100)
    y[37] = 50.0
    idx = downsample.lttb(x, y, 10)
    assert len(idx) == 10 and 37 in idx


def test_lttb_picks_the_largest_triangle():
    # one bucket between the ends: the point farthest from the line from the first to the last point wins
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, 1.0, 3.0, 2.0, 0.0])
    assert downsample.lttb(x, y, 3).tolist() == [0, 2, 4]


def test_minmax_keeps_every_bucket_low_and_high():
    x = np.arange(40, dtype=float)
    y = np.tile([0.0, 5.0, -5.0, 1.0], 10) + np.repeat(np.arange(10) * 100.0, 4)
    idx = downsample.minmax(x, y, 20)  # 9 equal-count buckets of 4-5 points
    kept = set(idx.tolist())
    assert 0 in kept and 39 in kept
    bucket = (np.arange(40) * 9) // 40
    for b in range(9):
        members = np.flatnonzero(bucket == b)
        assert members[np.argmin(y[members])] in kept and members[np.argmax(y[members])] in kept
    assert int(np.argmax(y)) in kept and int(np.argmin(y)) in kept
    assert len(idx) <= 20


def test_tiny_inputs():
    for n in (0, 1, 2):
        x, y = make(n, 1)
        assert downsample.reduce(x, y, 3, "lttb").tolist() == list(range(n))
    assert downsample.keep_extremes(np.empty(0), np.empty(0, dtype=np.int64)).tolist() == []
