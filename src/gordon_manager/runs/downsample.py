"""Downsampling of an equity series to a target point count: LTTB and min/max, extremes kept.

Both take candidate points sorted by time (``x`` seconds, ``y`` equity) and return the indices to
keep, sorted, always including the first and last point and the series' global minimum and maximum.

* **LTTB** (Largest-Triangle-Three-Buckets, Steinarsson 2013): the points between the first and
  the last are split into ``n - 2`` equal-count buckets; from each bucket the point forming the
  largest triangle with the previously kept point and the average of the next bucket is kept.
  It follows the visual shape of the curve.
* **min/max**: the points are split into ``n / 2`` equal-count buckets and each bucket's lowest and
  highest point are kept, so every local extreme at that resolution survives (an envelope).

Fed with per-bucket first/min/max/last candidates (see ``runs.equity``), LTTB becomes
"MinMaxLTTB": the candidates already hold every bucket's extremes.
"""

from __future__ import annotations

import numpy as np

MIN_POINTS = 3


def lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the ``n_out`` points LTTB keeps (all indices when there are not more points)."""
    n = int(x.shape[0])
    if n_out >= n or n <= 2:
        return np.arange(n)
    n_out = max(n_out, MIN_POINTS)
    # n_out - 2 buckets over indices 1..n-2; spacing >= 1, so the integer edges strictly increase.
    edges = np.floor(np.linspace(1, n - 1, n_out - 1)).astype(np.int64)
    counts = np.diff(edges)
    avg_x = np.add.reduceat(x[1:n - 1], edges[:-1] - 1) / counts
    avg_y = np.add.reduceat(y[1:n - 1], edges[:-1] - 1) / counts
    out = np.empty(n_out, dtype=np.int64)
    out[0], out[-1] = 0, n - 1
    a = 0
    last_bucket = n_out - 3
    for i in range(n_out - 2):
        lo, hi = edges[i], edges[i + 1]
        if i < last_bucket:
            nx, ny = avg_x[i + 1], avg_y[i + 1]
        else:
            nx, ny = x[n - 1], y[n - 1]
        ax, ay = x[a], y[a]
        # Twice the triangle area (the factor does not change the argmax).
        area = np.abs((ax - nx) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (ny - ay))
        a = lo + int(np.argmax(area))
        out[i + 1] = a
    return out


def minmax(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of each bucket's lowest and highest point (about ``n_out`` in all), plus both ends."""
    n = int(x.shape[0])
    if n_out >= n or n <= 2:
        return np.arange(n)
    buckets = max(1, n_out // 2 - 1)
    bucket = np.minimum((np.arange(n) * buckets) // n, buckets - 1)
    order = np.lexsort((y, bucket))  # by bucket, then by value
    starts = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1]])
    ends = np.r_[starts[1:], n] - 1
    keep = np.concatenate(([0, n - 1], order[starts], order[ends]))
    return np.unique(keep)


def keep_extremes(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``idx`` with the global minimum and maximum of ``y`` swapped in for their nearest kept points."""
    if y.shape[0] == 0:
        return idx
    idx = np.array(idx, dtype=np.int64)
    for extreme in (int(np.argmin(y)), int(np.argmax(y))):
        pos = int(np.searchsorted(idx, extreme))
        if pos < idx.shape[0] and idx[pos] == extreme:
            continue
        # Replace an inner neighbour (never the first/last point, never the other extreme).
        protected = {0, idx.shape[0] - 1}
        for j in (pos - 1, pos):
            if 0 <= j < idx.shape[0] and j not in protected and y[idx[j]] not in (y.min(), y.max()):
                idx[j] = extreme
                break
        else:
            idx = np.append(idx, extreme)
        idx = np.unique(idx)
    return idx


def reduce(x: np.ndarray, y: np.ndarray, n_out: int, method: str) -> np.ndarray:
    """Indices to keep for ``method`` (``lttb`` or ``minmax``), extremes included, sorted."""
    idx = lttb(x, y, n_out) if method == "lttb" else minmax(x, y, n_out)
    if idx.shape[0] < x.shape[0]:
        idx = keep_extremes(y, idx)
    return idx
