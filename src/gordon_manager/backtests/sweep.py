"""Parameter sweeps, the pure part: trial generation, objectives, ranking, heatmap, the process pool.

* ``grid_trials`` is the cartesian product of param -> values (in the order given); ``random_trials``
  samples ``budget`` distinct parameter sets from ranges (``{"min", "max"}``, integers when the
  strategy's schema says so) or value lists (``{"values": [...]}``) with a seeded generator, so a
  seeded search is reproducible. Parameter sets the strategy refuses (e.g. fast >= slow) are dropped
  before anything runs: they are counted, never run.
* A trial's outcome is the run's statistics (``writer.stats_json`` minus timings) plus ``cagr`` and
  ``calmar``; the equity is not kept.
* ``TrialPool`` runs trials on worker processes ('spawn'); each worker receives the bars once, in
  its initializer, and then only (n, params) chunks cross the process boundary.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from gordon_manager.backtests.engine import run_backtest
from gordon_manager.backtests.writer import stats_json
from gordon_manager.execution import Bars, ExecutionConfig
from gordon_manager.strategies import InvalidParams, StrategySpec, get_strategy

__all__ = ["MAX_TRIALS", "OBJECTIVES", "TrialOutcome", "TrialPool", "feasible", "grid_trials", "heatmap",
           "objective_value", "random_trials", "run_trial", "trial_stats"]

MAX_TRIALS = 20_000
OBJECTIVES = ("sharpe", "total_return", "calmar", "cagr", "win_rate", "final_equity", "max_drawdown")
"""What a sweep maximises (``max_drawdown`` is minimised: its value is negated for ranking)."""


@dataclass(frozen=True)
class TrialOutcome:
    """One trial's result: its stats, or the error the strategy raised."""

    n: int
    params: dict[str, Any]
    stats: dict[str, Any] | None
    error: str | None = None


def _valid(spec: StrategySpec, params: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return spec.parse_params(dict(params)).model_dump(mode="json")
    except InvalidParams:
        return None


def grid_trials(spec: StrategySpec, grid: Mapping[str, Sequence[Any]],
                base: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every valid combination of the grid's values (first param varies slowest); returns (trials, dropped)."""
    names = list(grid)
    trials: list[dict[str, Any]] = []
    dropped = 0
    for combo in itertools.product(*(grid[name] for name in names)):
        params = _valid(spec, {**(base or {}), **dict(zip(names, combo, strict=True))})
        if params is None:
            dropped += 1
        else:
            trials.append(params)
    return trials, dropped


def _sampler(spec: StrategySpec, name: str, dim: Mapping[str, Any]) -> Callable[[random.Random], Any]:
    if "values" in dim:
        values = list(dim["values"])
        return lambda rng: rng.choice(values)
    prop = spec.params_schema().get("properties", {}).get(name, {})
    lo, hi = dim["min"], dim["max"]
    if prop.get("type") == "integer":
        lo_i, hi_i = int(lo), int(hi)
        return lambda rng: rng.randint(lo_i, hi_i)
    return lambda rng: rng.uniform(float(lo), float(hi))


def random_trials(spec: StrategySpec, space: Mapping[str, Mapping[str, Any]], *, budget: int, seed: int,
                  base: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Up to ``budget`` distinct valid parameter sets sampled from ``space`` (seeded); returns (trials,
    dropped) where dropped counts invalid draws. Stops after ``budget * 50`` draws (a small space)."""
    rng = random.Random(seed)
    samplers = {name: _sampler(spec, name, dim) for name, dim in space.items()}
    seen: set[str] = set()
    trials: list[dict[str, Any]] = []
    dropped = 0
    for _ in range(budget * 50):
        if len(trials) >= budget:
            break
        params = _valid(spec, {**(base or {}), **{name: draw(rng) for name, draw in samplers.items()}})
        if params is None:
            dropped += 1
            continue
        key = repr(sorted(params.items()))
        if key not in seen:
            seen.add(key)
            trials.append(params)
    return trials, dropped


def trial_stats(bars: Bars, strategy: str, params: Mapping[str, Any], config: ExecutionConfig) -> dict[str, Any]:
    """The statistics of one trial: the run's stats (``writer.stats_json``, ``cagr`` and ``calmar``
    included, so a trial re-run as a full run has the very same figures)."""
    return stats_json(run_backtest(bars, strategy, params, config))


def objective_value(stats: Mapping[str, Any] | None, objective: str) -> float | None:
    """The value a trial is ranked by (higher is better); None when the statistic is undefined."""
    if stats is None:
        return None
    value = stats.get(objective)
    if value is None or not math.isfinite(float(value)):
        return None
    return -float(value) if objective == "max_drawdown" else float(value)


def feasible(stats: Mapping[str, Any] | None, value: float | None, *, min_trades: int) -> bool:
    """A trial is ranked when it ran, its objective is defined and it made at least ``min_trades`` trades."""
    return stats is not None and value is not None and int(stats.get("trade_count", 0)) >= min_trades


def heatmap(trials: Iterable[Mapping[str, Any]], x: str, y: str) -> dict[str, Any]:
    """The best objective value per (x, y) over the other params: ``{"x", "y", "xValues", "yValues",
    "values"}`` with ``values[j][i]`` for ``yValues[j]``, ``xValues[i]`` (None where no feasible trial)."""
    cells: dict[tuple[Any, Any], float] = {}
    xs: set[Any] = set()
    ys: set[Any] = set()
    for t in trials:
        px, py = t["params"].get(x), t["params"].get(y)
        xs.add(px)
        ys.add(py)
        value = t.get("value")
        if t.get("feasible") and value is not None:
            cells[(px, py)] = max(value, cells.get((px, py), -math.inf))
    x_values, y_values = sorted(xs, key=_order), sorted(ys, key=_order)
    return {"x": x, "y": y, "x_values": x_values, "y_values": y_values,
            "values": [[cells.get((vx, vy)) for vx in x_values] for vy in y_values]}


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (1, str(value))


# -- the process pool ------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(bars: Bars, strategy: str, config: ExecutionConfig, log_level: str) -> None:
    """Pool initializer: the bars arrive once per worker and stay for every chunk it runs."""
    from gordon_manager.backtests.worker import init_worker

    init_worker(log_level)
    _WORKER.update(bars=bars, strategy=strategy, config=config)


def run_trial(bars: Bars, strategy: str, config: ExecutionConfig, n: int, params: dict[str, Any]) -> TrialOutcome:
    """One trial; a strategy that raises gives an outcome with the error, never an exception."""
    try:
        return TrialOutcome(n, params, trial_stats(bars, strategy, params, config))
    except Exception as exc:  # a failing parameter set is a result of the sweep, not its end
        return TrialOutcome(n, params, None, f"{type(exc).__name__}: {exc}"[:500])


def _run_chunk(chunk: list[tuple[int, dict[str, Any]]]) -> list[TrialOutcome]:
    bars, strategy, config = _WORKER["bars"], _WORKER["strategy"], _WORKER["config"]
    return [run_trial(bars, strategy, config, n, params) for n, params in chunk]


class TrialPool:
    """Worker processes holding one sweep's bars; ``submit`` a chunk of trials, get a future of outcomes.

    ``workers=0`` runs chunks in the calling thread (tests, tiny sweeps)."""

    def __init__(self, bars: Bars, strategy: str, config: ExecutionConfig, *, workers: int,
                 log_level: str = "WARNING") -> None:
        get_strategy(strategy)
        self.bars, self.strategy, self.config, self.workers = bars, strategy, config, workers
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker,
                                                 initargs=(bars, strategy, config, log_level))

    def chunk_size(self, trials: int) -> int:
        """Trials per task: about 8 tasks per worker (progress and cancel granularity), at most 64."""
        return max(1, min(64, math.ceil(trials / max(1, self.workers * 8))))

    def submit(self, chunk: list[tuple[int, dict[str, Any]]]) -> Future[list[TrialOutcome]]:
        """Run a chunk of (n, params) on a worker."""
        if self._executor is not None:
            return self._executor.submit(_run_chunk, chunk)
        future: Future[list[TrialOutcome]] = Future()
        future.set_result([run_trial(self.bars, self.strategy, self.config, n, p) for n, p in chunk])
        return future

    def close(self, *, cancel: bool = False) -> None:
        """End the workers (``cancel``: drop the chunks not started)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=cancel)
            self._executor = None

    def terminate(self) -> None:
        """Stop at once: kill the workers (their chunks are lost) and drop the rest."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # concurrent.futures has no public "stop now"; a cancel or a stopping manager must not wait for
        # the chunks in flight.
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=True)
