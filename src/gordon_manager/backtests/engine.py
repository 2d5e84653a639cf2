"""Vectorized backtest engine over the shared ExecutionModel.

Signals are computed for the whole series at once. The engine then walks only the bars where
something can happen: a bar whose signal the decision rule would act on (an entry bar while flat,
an exit bar while long) and the first bar on which a working order triggers (found with the fill
model's own trigger test on array slices). Those bars go through exactly the calls the live
``BarLoop`` makes on every bar (``process_bar``, then ``decide``); every other bar provably does
nothing there. Equity is then built in one pass from the piecewise-constant (cash, position)
segments: ``float(cash) + float(position) * close``, the same expression the loop evaluates.

A run with only the decision rule's market orders and the default models takes ``fastpath`` instead
of the event walk: the same ledger arithmetic stepped fill to fill, bit-identical (see there).
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel

from gordon_manager.backtests import fastpath
from gordon_manager.execution import (
    Bars,
    Decision,
    ExecutionConfig,
    ExecutionModel,
    FeeModel,
    Fill,
    FillModel,
    Rejection,
    RoundTrip,
    SlippageModel,
    decide,
)
from gordon_manager.execution.money import ZERO
from gordon_manager.stats import BacktestStats, Trips, compute_stats
from gordon_manager.strategies import get_strategy

__all__ = ["BacktestCancelled", "BacktestResult", "run_backtest"]

_CHECK_EVERY = 256  # events between cancellation checks / progress reports


_gc_lock = threading.Lock()
_gc_pausers = 0  # runs in progress in this process (threads) that paused the cyclic collector
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a run, then restore it as it was.

    A run allocates tens of thousands of small containers (the events' tuples, the lists holding
    them) and keeps them all, so the collector's passes, triggered by allocation counts, keep
    re-scanning objects that cannot be garbage: ~8% of a 200k-bar run in a process with pandas
    loaded (bench/backtest_peers.py's). The run's objects form no reference cycles, so reference
    counting frees what it drops, as before; a cycle made meanwhile (an exception's traceback, another
    thread's garbage) waits for the collector's next pass. Nested and concurrent runs (threads)
    share one pause: the collector comes back when the last of them ends, in the state the first
    found it (a process that turned it off keeps it off).
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


class BacktestCancelled(Exception):
    """``should_cancel`` returned True; the run stopped without a result."""


Events = tuple[list[Fill], list[Decision], list[RoundTrip], list[Rejection]]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything a run produced: equity per bar close, events, statistics.

    The events (``fills``, ``decisions``, ``round_trips``, ``rejections``) are lists of the model's
    tuples. A run on the fast path's whole steps holds them as columns of whole numbers
    (``fastpath.ScaledRun``) and makes the tuples, with their Decimals, the first time one of the
    four is read (the same values and representations as the Decimal path's); the statistics are
    computed from the columns. So a sweep's trial, which keeps only its statistics, never makes them.
    """

    strategy: str
    params: BaseModel
    config: ExecutionConfig
    ts: np.ndarray
    equity: np.ndarray  # cash + qty x close at each bar's close
    cash: np.ndarray  # the ledger's cash and position at each bar's close (float of the exact values)
    qty: np.ndarray
    stats: BacktestStats
    events: Events | fastpath.ScaledRun

    @cached_property
    def _events(self) -> Events:
        events = self.events
        if not isinstance(events, fastpath.ScaledRun):
            return events
        with gc_paused():  # tens of thousands of tuples that cannot be garbage (see gc_paused)
            return events.events()

    @property
    def fills(self) -> list[Fill]:
        return self._events[0]

    @property
    def decisions(self) -> list[Decision]:
        return self._events[1]

    @property
    def round_trips(self) -> list[RoundTrip]:
        return self._events[2]

    @property
    def rejections(self) -> list[Rejection]:
        return self._events[3]

    def counts(self) -> tuple[int, int, int]:
        """(fills, decisions, rejections), without making the events."""
        events = self.events
        if isinstance(events, fastpath.ScaledRun):
            return events.counts()
        return len(events[0]), len(events[1]), len(events[3])


@gc_paused()
def run_backtest(
    bars: Bars,
    strategy_name: str,
    params: BaseModel | Mapping[str, Any] | None = None,
    exec_config: ExecutionConfig | None = None,
    *,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    fee_model: FeeModel | None = None,
    slippage_model: SlippageModel | None = None,
    fill_model: FillModel | None = None,
    fast_path: bool = True,
) -> BacktestResult:
    """Run ``strategy_name`` over ``bars``; decisions at a bar's close fill from the next bar.

    ``fast_path`` (default) lets a run that only has market orders and the default models take
    ``backtests.fastpath`` (bit-identical results); False forces the generic event walk. The cyclic
    garbage collector is paused for the run (``gc_paused``).
    """
    spec = get_strategy(strategy_name)
    p = spec.parse_params(params)
    config = exec_config or ExecutionConfig()
    model = ExecutionModel(
        config, fee_model=fee_model, slippage_model=slippage_model, fill_model=fill_model
    )

    reported = [0.0]  # never back: a whole-step run that declines part way is redone from its start

    def checkpoint(fraction: float) -> None:
        if should_cancel is not None and should_cancel():
            raise BacktestCancelled(f"backtest of {strategy_name} cancelled")
        if progress is not None:
            reported[0] = max(reported[0], min(1.0, fraction))
            progress(reported[0])

    checkpoint(0.0)
    sig = spec.signals(bars, p)
    checkpoint(0.0)  # signals are one vectorized pass; honour a cancel that came during it
    fast = fast_path and fastpath.applies(model, sig)
    columns = fastpath.run_columns(model, bars, sig, checkpoint) if fast else None
    if columns is not None:
        (seg_start, seg_cash, seg_qty), run = columns
        return _finish(spec.name, p, config, model, bars, seg_start, seg_cash, seg_qty, run, checkpoint)
    events: Events = ([], [], [], [])
    walk = fastpath.run_decimal if fast else _walk
    seg_start, seg_cash, seg_qty = walk(model, bars, sig, *events, checkpoint)
    return _finish(spec.name, p, config, model, bars, seg_start, seg_cash, seg_qty, events, checkpoint)


def _walk(model: ExecutionModel, bars: Bars, sig: Any, fills: list[Fill], decisions: list[Decision],
          trips: list[RoundTrip], rejections: list[Rejection],
          checkpoint: Callable[[float], None]) -> tuple[list[int], list[float], list[float]]:
    """The generic event walk (any order type, brackets, custom models)."""
    n = len(bars)
    entries = np.flatnonzero(sig.entry).tolist()
    exits = np.flatnonzero(sig.exit).tolist()
    ts, o, h, lo = bars.ts, bars.open, bars.high, bars.low
    seg_start = [0]
    seg_cash = [float(model.cash)]
    seg_qty = [float(model.position)]
    fill_from = 0  # first bar whose fills are not yet processed
    decide_from = 0  # first bar whose close is not yet decided
    steps = 0
    while decide_from < n:
        steps += 1
        if steps % _CHECK_EVERY == 0:
            checkpoint(decide_from / n)
        cands = entries if model.position == ZERO else exits
        k = bisect.bisect_left(cands, decide_from)
        d = cands[k] if k < len(cands) else n
        f = None
        if model.has_open():
            f = model.next_trigger(ts=ts, open_=o, high=h, low=lo, start=fill_from, stop=min(d + 1, n))
        if f is not None:
            # Fills at bar f come before the decision at f's close, which may now differ.
            changed = False
            for ev in model.process_bar(bars.bar(f)):
                if isinstance(ev, Fill):
                    fills.append(ev)
                    changed = True
                elif isinstance(ev, RoundTrip):
                    trips.append(ev)
                else:
                    rejections.append(ev)
            if changed:
                seg_start.append(f)
                seg_cash.append(float(model.cash))
                seg_qty.append(float(model.position))
            fill_from, decide_from = f + 1, f
            continue
        if d >= n:
            break
        entry, exit_, stop_loss, take_profit = sig.at(d)
        decision = decide(model, bars.bar(d), entry=entry, exit_=exit_, stop_loss=stop_loss,
                          take_profit=take_profit)
        if decision is not None:
            decisions.append(decision)
        decide_from = d + 1
        fill_from = max(fill_from, d + 1)
    return seg_start, seg_cash, seg_qty


def _finish(name: str, p: BaseModel, config: ExecutionConfig, model: ExecutionModel, bars: Bars,
            seg_start: list[int], seg_cash: list[float], seg_qty: list[float], events: Events | fastpath.ScaledRun,
            checkpoint: Callable[[float], None]) -> BacktestResult:
    trips: Trips = events.trip_columns() if isinstance(events, fastpath.ScaledRun) else events[2]
    n = len(bars)
    ts, c = bars.ts, bars.close
    lengths = np.diff(np.asarray(seg_start + [n], dtype=np.int64)).astype(np.int64)
    cash = np.repeat(np.asarray(seg_cash, dtype=np.float64), lengths)
    qty = np.repeat(np.asarray(seg_qty, dtype=np.float64), lengths)
    equity = cash + qty * c
    for column in (equity, cash, qty):
        column.setflags(write=False)
    stats = compute_stats(
        equity=equity,
        initial_equity=float(config.initial_cash),
        interval_ms=bars.interval_ms,
        fills=(),  # total_fees is given: the fills are not read
        round_trips=trips,
        position_bars=int(lengths[np.asarray(seg_qty) > 0.0].sum()),
        total_fees=model.fees_paid,
        ts=ts,
        close=c,
    )
    checkpoint(1.0)
    return BacktestResult(
        strategy=name,
        params=p,
        config=config,
        ts=bars.ts,
        equity=equity,
        cash=cash,
        qty=qty,
        stats=stats,
        events=events,
    )
