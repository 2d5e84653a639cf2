"""BarLoop: the pure, IO-free core of a live bot.

It drives the very same ``StrategySpec`` and ``ExecutionModel`` as the backtest engine, one bar at
a time, in the same order the engine uses: fills of the working orders on this bar, equity at the
close, then the strategy's decision at the close (an order for the next bar). The caller feeds
closed bars (from Postgres) and persists the events returned; the parity test holds the result to
be identical to ``run_backtest`` on the same bars.

Three switches let a bot use the same loop outside a plain replay: ``decide=False`` only warms the
strategy up (history before the bot's first tradable bar), ``simulate=False`` leaves fills to
someone else (a live bot books the executor's fills, never simulated ones), and ``block_entries``
turns an entry the strategy wants into a ``BlockedEntry`` (paused, risk halt, breaker) while exits
still go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel

from gordon_manager.execution import (
    Bar,
    Bars,
    Decision,
    EquityPoint,
    ExecutionConfig,
    ExecutionModel,
    FeeModel,
    Fill,
    FillModel,
    Rejection,
    RoundTrip,
    Side,
    SlippageModel,
    validate_bar,
)
from gordon_manager.execution.policy import decide as decide_order
from gordon_manager.strategies import StrategySpec, get_strategy

__all__ = ["BarLoop", "BlockedEntry", "LoopEvent"]


class BlockedEntry(NamedTuple):
    """An entry the strategy wanted at bar ``ts`` that was not submitted, and why."""

    ts: int
    reason: str


LoopEvent = Fill | Rejection | RoundTrip | EquityPoint | Decision | BlockedEntry

_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class _Window(NamedTuple):
    """Trailing history handed to the signal function (contiguous views, oldest first)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def warmup_window(spec: StrategySpec, params: Any) -> int:
    """Bars a strategy holds before its first decision (its first decision is on the last of them)."""
    return max(1, spec.warmup(params))


class BarLoop:
    """Bar-by-bar strategy + execution; ``on_bar`` returns what happened, it never does IO."""

    def __init__(
        self,
        strategy: str | StrategySpec,
        params: BaseModel | Mapping[str, Any] | None = None,
        exec_config: ExecutionConfig | None = None,
        *,
        fee_model: FeeModel | None = None,
        slippage_model: SlippageModel | None = None,
        fill_model: FillModel | None = None,
    ) -> None:
        self.spec = strategy if isinstance(strategy, StrategySpec) else get_strategy(strategy)
        self.params = self.spec.parse_params(params)
        self.config = exec_config or ExecutionConfig()
        self.model = ExecutionModel(
            self.config, fee_model=fee_model, slippage_model=slippage_model, fill_model=fill_model
        )
        self.window = warmup_window(self.spec, self.params)
        # Twice the window so the trailing slice is shifted down once per `window` bars, not per bar.
        self._capacity = 2 * self.window
        self._buf = {
            name: np.empty(self._capacity, dtype=np.int64 if name == "ts" else np.float64)
            for name in _COLUMNS
        }
        self._len = 0
        self._last_ts: int | None = None
        self.bars_seen = 0

    @property
    def warmed_up(self) -> bool:
        """True once the loop holds a full window and can take decisions."""
        return self._len >= self.window

    @property
    def history(self) -> Bars:
        """The trailing window currently held (at most ``window`` bars)."""
        w = self._view()
        return Bars(w.ts, w.open, w.high, w.low, w.close, w.volume)

    def _view(self) -> _Window:
        lo = max(0, self._len - self.window)
        return _Window(*(self._buf[name][lo : self._len] for name in _COLUMNS))

    def _push(self, bar: Bar) -> None:
        if self._len == self._capacity:
            keep = self.window - 1
            for arr in self._buf.values():
                arr[:keep] = arr[self._len - keep : self._len]
            self._len = keep
        i = self._len
        for name, value in zip(_COLUMNS, bar, strict=True):
            self._buf[name][i] = value
        self._len += 1

    def on_bar(self, bar: Bar, *, decide: bool = True, simulate: bool = True,
               block_entries: str | None = None) -> list[LoopEvent]:
        """Process one closed bar: fills, round trips, the equity point, then any decision."""
        validate_bar(bar)
        if self._last_ts is not None and bar.ts <= self._last_ts:
            raise ValueError(f"bar ts {bar.ts} is not after the previous bar ({self._last_ts})")
        self._last_ts = bar.ts
        self.bars_seen += 1
        events: list[LoopEvent] = list(self.model.process_bar(bar)) if simulate else []
        self._push(bar)
        events.append(EquityPoint(bar.ts, self.model.equity(bar.close)))
        # Before a full window the signal is defined to be nothing (StrategySpec contract).
        if decide and self.warmed_up:
            sig = self.spec.signals(self._view(), self.params)
            entry, exit_, stop_loss, take_profit = sig.at(self.window - 1)
            if entry and block_entries is not None:
                model = self.model
                if model.position == 0 and not model.has_open(side=Side.BUY):
                    events.append(BlockedEntry(bar.ts, block_entries))
                entry = False
            decision = decide_order(
                self.model, bar, entry=entry, exit_=exit_, stop_loss=stop_loss, take_profit=take_profit
            )
            if decision is not None:
                events.append(decision)
        return events
