"""Seeded synthetic klines: deterministic, consistent, clustered volatility."""

from __future__ import annotations

import numpy as np
import pytest

from gordon_manager.marketdata import generate_klines
from gordon_manager.marketdata.synth import INTERVALS_MS, interval_ms


def test_same_seed_same_bars_bit_for_bit() -> None:
    a, b = generate_klines(n_bars=5_000, seed=42), generate_klines(n_bars=5_000, seed=42)
    for col in ("ts", "open", "high", "low", "close", "volume"):
        assert getattr(a, col).tobytes() == getattr(b, col).tobytes()
    assert generate_klines(n_bars=5_000, seed=43).close.tobytes() != a.close.tobytes()


def test_bars_look_like_klines() -> None:
    b = generate_klines(n_bars=20_000, seed=1, start_ts=1_000, start_price=250.0)
    assert b.ts[0] == 1_000 and set(np.diff(b.ts).tolist()) == {60_000}
    assert b.open[0] == 250.0 and np.array_equal(b.open[1:], b.close[:-1])
    assert np.array_equal(np.round(b.close * 100) / 100, b.close)  # on the 0.01 tick
    assert (b.high >= np.maximum(b.open, b.close)).all() and (b.low <= np.minimum(b.open, b.close)).all()
    assert (b.high > np.maximum(b.open, b.close)).mean() > 0.5  # wicks exist
    assert (b.volume > 0).all()
    r = np.diff(np.log(b.close))
    a = np.abs(r - r.mean())
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.05  # volatility clusters
    kurt = ((r - r.mean()) ** 4).mean() / r.var() ** 2
    assert kurt > 4  # fat tails
    ann = r.std() * np.sqrt(525_600)
    assert 0.3 < ann < 1.2  # near the 0.6 default


@pytest.mark.parametrize("interval", list(INTERVALS_MS))
def test_every_interval(interval: str) -> None:
    b = generate_klines(n_bars=300, seed=3, interval=interval)
    assert len(b) == 300 and b.interval_ms == interval_ms(interval)


def test_other_ticks_and_bad_arguments() -> None:
    b = generate_klines(n_bars=500, seed=4, tick=0.5, start_price=1000.0)
    assert np.array_equal(np.round(b.close * 2) / 2, b.close)
    assert len(generate_klines(n_bars=0, seed=1)) == 0
    assert len(generate_klines(n_bars=100, seed=1, vol_of_vol=0.0)) == 100
    assert len(generate_klines(n_bars=100, seed=1, interval="1d", vol_half_life_hours=1e-3)) == 100
    for bad in ({"n_bars": -1}, {"interval": "7m"}, {"tick": 0.03}, {"start_price": 0}, {"annual_vol": 0}):
        with pytest.raises(ValueError):
            generate_klines(**{"n_bars": 10, "seed": 1, **bad})
