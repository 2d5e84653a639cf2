"""Walk-forward analysis, the pure part: fold windows, the in-sample pick, the degradation summary.

A walk-forward sweep splits its range's ``n`` bars into ``k`` folds, each a train window followed by a
test window; the test windows are contiguous and the last one ends at the range's last bar.

* Sizes: ``test_fraction`` f gives ``test = floor(n * f / k)`` bars per test window (the k test windows
  hold a share f of the range) and ``train = n - k * test`` bars to the first train window; or
  ``train_bars`` and ``test_bars`` are given (``train + k * test <= n``; the bars before the first
  train window are not used).
* ``rolling``: every train window has ``train`` bars and slides by ``test`` bars per fold; ``anchored``:
  every train window starts at the first bar used and grows by ``test`` bars per fold.

In each fold the sweep's trials run on the train bars only; the best feasible trial (highest objective
value, ties to the lowest trial number) is then run on the test bars only (its indicators warm up
inside the test window: nothing of the train window leaks into the out-of-sample result).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gordon_manager.backtests import sweep

__all__ = ["DEFAULT_TEST_FRACTION", "MAX_FOLDS", "Fold", "FoldLayoutError", "best_in_sample", "fold_layout",
           "summary"]

DEFAULT_TEST_FRACTION = 0.2
MAX_FOLDS = 20
MODES = ("rolling", "anchored")


class FoldLayoutError(ValueError):
    """The folds do not fit the range; ``member`` names the setting to change."""

    def __init__(self, message: str, member: str) -> None:
        super().__init__(message)
        self.member = member


@dataclass(frozen=True)
class Fold:
    """One fold's windows as bar indices in the range (``*_first`` inclusive, ``*_bars`` long)."""

    index: int
    train_first: int
    train_bars: int
    test_first: int
    test_bars: int

    @property
    def train_end(self) -> int:
        return self.train_first + self.train_bars

    @property
    def test_end(self) -> int:
        return self.test_first + self.test_bars


def fold_layout(n_bars: int, *, folds: int, mode: str = "rolling", test_fraction: float | None = None,
                train_bars: int | None = None, test_bars: int | None = None) -> list[Fold]:
    """The folds over ``n_bars`` bars; FoldLayoutError (naming the setting) when they do not fit."""
    if mode not in MODES:
        raise FoldLayoutError(f"mode must be one of {', '.join(MODES)}", "mode")
    if folds < 1:
        raise FoldLayoutError("at least one fold", "folds")
    if train_bars is None and test_bars is None:
        f = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0.0 < f < 1.0:
            raise FoldLayoutError("testFraction must be between 0 and 1 (exclusive)", "testFraction")
        test = math.floor(n_bars * f / folds)
        if test < 1:
            raise FoldLayoutError(f"{n_bars} bars give {folds} test windows of {n_bars * f / folds:.2f} bars: "
                                  f"fewer folds, a larger testFraction or a longer range", "testFraction")
        train, offset = n_bars - folds * test, 0
    else:
        if train_bars is None or test_bars is None:
            raise FoldLayoutError("give trainBars and testBars together", "trainBars" if train_bars is None
                                  else "testBars")
        train, test = train_bars, test_bars
        if train < 1 or test < 1:
            raise FoldLayoutError("trainBars and testBars must be >= 1", "trainBars" if train < 1 else "testBars")
        offset = n_bars - train - folds * test
        if offset < 0:
            raise FoldLayoutError(f"trainBars + folds × testBars = {train + folds * test} bars; the range has "
                                  f"{n_bars}", "trainBars")
    out = []
    for i in range(folds):
        test_first = offset + train + i * test
        first = offset if mode == "anchored" else offset + i * test
        out.append(Fold(index=i, train_first=first, train_bars=test_first - first, test_first=test_first,
                        test_bars=test))
    return out


def best_in_sample(outcomes: Iterable[sweep.TrialOutcome], objective: str, *,
                   min_trades: int) -> tuple[sweep.TrialOutcome | None, float | None, int]:
    """The best feasible trial of a fold's train window (highest objective value, ties to the lowest n), its
    value (higher is better, as ``sweep.objective_value``), and how many trials were feasible."""
    best: tuple[float | None, int] | None = None
    chosen: sweep.TrialOutcome | None = None
    count = 0
    for outcome in outcomes:
        value = sweep.objective_value(outcome.stats, objective)
        if not sweep.feasible(outcome.stats, value, min_trades=min_trades):
            continue
        count += 1
        key = (value, -outcome.n)
        if best is None or key > best:
            best, chosen = key, outcome
    return chosen, (best[0] if best else None), count


def ratio(in_sample: float | None, out_of_sample: float | None) -> float | None:
    """Out-of-sample / in-sample value of the objective (as shown: a drawdown is positive); None when the
    in-sample value is not positive (the ratio then means nothing) or either is missing."""
    if in_sample is None or out_of_sample is None or not in_sample > 0:
        return None
    return out_of_sample / in_sample


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summary(folds: Sequence[Mapping[str, Any]], *, total_folds: int) -> dict[str, Any]:
    """The in-sample vs out-of-sample degradation over the folds done, from each fold's ``is_value``,
    ``oos_value`` (as shown) and ``oos_stats``:

    * ``in_sample_mean`` / ``out_of_sample_mean``: the objective's means over the folds with both values;
    * ``ratio_mean``: the mean over folds of out-of-sample / in-sample (folds whose in-sample value is > 0);
    * ``ratio_of_means``: out_of_sample_mean / in_sample_mean (when the latter is > 0);
    * ``out_of_sample_return``: the test windows' total returns compounded (the out-of-sample equity of
      trading each fold's pick in turn, each window starting flat)."""
    both = [f for f in folds if f.get("is_value") is not None and f.get("oos_value") is not None]
    ratios = [r for r in (ratio(f["is_value"], f["oos_value"]) for f in both) if r is not None]
    is_mean = _mean([f["is_value"] for f in both])
    oos_mean = _mean([f["oos_value"] for f in both])
    growth, tested = 1.0, 0
    for f in folds:
        stats = f.get("oos_stats")
        if stats is not None and stats.get("total_return") is not None:
            growth *= 1.0 + float(stats["total_return"])
            tested += 1
    return {"folds": total_folds, "folds_done": sum(1 for f in folds if f.get("done")), "folds_compared": len(both),
            "in_sample_mean": is_mean, "out_of_sample_mean": oos_mean, "ratio_mean": _mean(ratios),
            "ratio_of_means": ratio(is_mean, oos_mean),
            "out_of_sample_return": growth - 1.0 if tested else None}
