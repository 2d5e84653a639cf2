"""Strategy contract: a frozen params model, a warmup, and a vectorized causal signal function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ValidationError

from gordon_manager.strategies.errors import InvalidParams

__all__ = ["OHLCV", "Signals", "StrategySpec"]


class OHLCV(Protocol):
    """Column arrays a signal function reads (``Bars`` or the live loop's trailing window); read-only."""

    @property
    def open(self) -> np.ndarray: ...
    @property
    def high(self) -> np.ndarray: ...
    @property
    def low(self) -> np.ndarray: ...
    @property
    def close(self) -> np.ndarray: ...
    @property
    def volume(self) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Signals:
    """Per-bar signal, known at the bar's close.

    Long/flat: the target becomes 1 on ``entry`` while flat and 0 on ``exit`` while long
    (otherwise it holds); a stop loss or take profit fill resets it to 0. ``stop_loss`` and
    ``take_profit`` (NaN = none) are the bracket levels attached to an entry at that bar.
    """

    entry: np.ndarray
    exit: np.ndarray
    stop_loss: np.ndarray | None = None
    take_profit: np.ndarray | None = None

    def at(self, i: int) -> tuple[bool, bool, float, float]:
        """``(entry, exit, stop_loss, take_profit)`` at bar ``i`` as Python scalars."""
        sl = float(self.stop_loss[i]) if self.stop_loss is not None else float("nan")
        tp = float(self.take_profit[i]) if self.take_profit is not None else float("nan")
        return bool(self.entry[i]), bool(self.exit[i]), sl, tp


SignalFn = Callable[[OHLCV, Any], Signals]


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy.

    ``signal_fn(bars, params)`` must be causal (bar ``i`` reads bars ``<= i`` only) and
    window-position-invariant with a window of ``warmup(params)`` bars: run on the last
    ``warmup`` bars it must give, for the last bar, the bit-identical signal it gives on the full
    history. ``signals`` clears entries and exits before bar ``warmup - 1``.
    """

    name: str
    description: str
    params_model: type[BaseModel]
    signal_fn: SignalFn
    warmup_fn: Callable[[Any], int]
    examples: tuple[Mapping[str, Any], ...] = field(default=())

    def params_schema(self) -> dict[str, Any]:
        """JSON schema of the params model."""
        return self.params_model.model_json_schema()

    def default_params(self) -> BaseModel:
        """The params model with every default."""
        return self.params_model()

    def parse_params(self, params: BaseModel | Mapping[str, Any] | None = None) -> BaseModel:
        """Validate raw params (or accept an instance of the params model); InvalidParams if bad."""
        if params is None:
            return self.default_params()
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return self.params_model.model_validate(dict(params))
        except ValidationError as exc:
            raise InvalidParams(self.name, exc.errors(include_url=False)) from exc

    def warmup(self, params: BaseModel) -> int:
        """Bars of history the signal at a bar depends on (the live loop's window size)."""
        return int(self.warmup_fn(params))

    def signals(self, bars: OHLCV, params: BaseModel) -> Signals:
        """Run the signal function, check its shapes, and silence bars before the warmup."""
        sig = self.signal_fn(bars, params)
        n = len(bars.close)
        for arr in (sig.entry, sig.exit, sig.stop_loss, sig.take_profit):
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{self.name}: signal arrays must have shape ({n},)")
        # The live loop decides only once it holds a full window; the same cut here keeps the
        # engine identical even when one leg of a strategy (e.g. a shorter exit channel) is
        # valid earlier.
        cut = min(n, max(0, self.warmup(params) - 1))
        entry = np.array(sig.entry, dtype=bool)
        exit_ = np.array(sig.exit, dtype=bool)
        entry[:cut] = False
        exit_[:cut] = False
        return Signals(entry=entry, exit=exit_, stop_loss=sig.stop_loss, take_profit=sig.take_profit)
