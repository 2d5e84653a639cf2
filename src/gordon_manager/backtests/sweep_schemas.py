"""Request and response models of parameter sweeps (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gordon_manager.backtests.schemas import INTERVAL_PATTERN, SYMBOL_PATTERN, ExecutionSettings, RunStatus
from gordon_manager.http.models import CamelModel, JsonObject, Page
from gordon_manager.http.values import Rfc3339
from gordon_manager.runs.schemas import RunStats

Objective = Literal["sharpe", "totalReturn", "calmar", "cagr", "winRate", "finalEquity", "maxDrawdown"]
OBJECTIVE_FIELDS: dict[str, str] = {"sharpe": "sharpe", "totalReturn": "total_return", "calmar": "calmar",
                                    "cagr": "cagr", "winRate": "win_rate", "finalEquity": "final_equity",
                                    "maxDrawdown": "max_drawdown"}
OBJECTIVE_NAMES = {v: k for k, v in OBJECTIVE_FIELDS.items()}


class SearchDimension(CamelModel):
    """A random search's range of one param: ``min``..``max`` (integers when the param is), or ``values``."""

    min: float | None = Field(None, examples=[5])
    max: float | None = Field(None, examples=[50])
    values: list[Any] | None = Field(None, min_length=1, max_length=10_000, examples=[[5, 10, 20]])

    @model_validator(mode="after")
    def _one_form(self) -> SearchDimension:
        if self.values is None and (self.min is None or self.max is None):
            raise ValueError("give min and max, or values")
        if self.values is None and self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must be <= max")
        return self


class RandomSearch(CamelModel):
    """A seeded random search: ``trials`` distinct parameter sets drawn from ``space``."""

    trials: int = Field(ge=1, le=20_000, examples=[200], description="Trial budget.")
    seed: int = Field(0, ge=0, le=2**62, description="Generator seed: the same seed draws the same trials.")
    space: dict[str, SearchDimension] = Field(min_length=1, max_length=32,
                                              description="Param (camelCase or snake_case) → range or values.")


class WalkForward(CamelModel):
    """Walk-forward analysis of a sweep: its range split into ``folds`` train/test windows; in each fold the
    trials run on the train bars, and the best of them is evaluated on the test bars that follow.

    Sizes: ``testFraction`` (default 0.2) is the share of the range's bars the test windows hold together
    (each ``floor(bars × testFraction / folds)``; the first train window takes the rest), or ``trainBars``
    and ``testBars`` give them in bars (the folds end at the range's last bar; earlier bars are unused).
    ``rolling``: train windows of a fixed length sliding by one test window per fold; ``anchored``: train
    windows all starting at the first bar, growing by one test window per fold."""

    folds: int = Field(ge=1, le=20, examples=[5], description="Number of train/test folds.")
    mode: Literal["rolling", "anchored"] = Field("rolling", description="rolling or anchored train windows.")
    test_fraction: float | None = Field(None, gt=0, lt=1, examples=[0.2],
                                        description="Share of the range's bars tested out-of-sample, over all "
                                                    "folds (default 0.2 unless trainBars/testBars are given).")
    train_bars: int | None = Field(None, ge=2, le=10**9, description="Bars of the (first) train window.")
    test_bars: int | None = Field(None, ge=2, le=10**9, description="Bars of each test window (with trainBars).")

    @field_validator("test_bars")
    @classmethod
    def _sizes(cls, test_bars: int | None, info: ValidationInfo) -> int | None:
        # (trainBars without testBars: the service's 422 names walkForward.testBars)
        if test_bars is None:
            return None
        if "train_bars" in info.data and info.data["train_bars"] is None:
            raise ValueError("give trainBars and testBars together")
        if info.data.get("test_fraction") is not None:
            raise ValueError("give testFraction, or trainBars and testBars, not both")
        return test_bars


class SweepCreate(CamelModel):
    """POST /backtests/sweeps body: one strategy over one range, a grid or a random search of its params."""

    strategy: str = Field(min_length=1, max_length=64, examples=["sma_crossover"])
    params: JsonObject = Field(default_factory=dict, description="Fixed params of every trial (the swept ones "
                                                                 "override them); omitted ones take defaults.")
    symbol: str = Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])
    interval: str = Field(pattern=INTERVAL_PATTERN, examples=["1m"])
    from_: Rfc3339 = Field(alias="from", examples=["2024-01-01T00:00:00Z"])
    to: Rfc3339 = Field(examples=["2024-02-01T00:00:00Z"])
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    grid: dict[str, list[Any]] | None = Field(None, max_length=32, examples=[{"fast": [5, 10], "slow": [20, 40]}],
                                              description="Param → values: every valid combination is a trial.")
    search: RandomSearch | None = Field(None, validate_default=True,
                                        description="A random search instead of a grid (give one of the two).")
    objective: Objective = Field("sharpe", description="What ranks the trials (maxDrawdown: lowest first).")
    min_trades: int = Field(0, ge=0, le=10**9, description="Trials with fewer round trips are not ranked.")
    walk_forward: WalkForward | None = Field(None, examples=[{"folds": 4, "mode": "rolling", "testFraction": 0.25}],
                                             description="Also run a walk-forward analysis over the range (after "
                                                         "the trials over the whole range).")

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is not None and (not grid or any(not values for values in grid.values())):
            raise ValueError("every grid param needs at least one value")
        return grid

    @field_validator("search")
    @classmethod
    def _grid_or_search(cls, search: RandomSearch | None, info: ValidationInfo) -> RandomSearch | None:
        # grid is declared (and validated) first: the error names `search`, the member to add or drop
        if "grid" in info.data and (info.data["grid"] is None) == (search is None):
            raise ValueError("give either grid or search")
        return search


class SweepAccepted(CamelModel):
    """The sweep a POST /backtests/sweeps queued."""

    id: int = Field(examples=[7])
    status: RunStatus = Field(examples=["queued"])
    trials_total: int = Field(examples=[120], description="Valid parameter sets to run.")
    trials_dropped: int = Field(examples=[4], description="Combinations the strategy refused (not run).")
    sweep_url: str = Field(examples=["/backtests/sweeps/7"])


class SweepTrial(CamelModel):
    """One trial: params, stats (no equity), the objective's value, rank among feasible trials."""

    n: int = Field(description="Trial number within the sweep (0-based).")
    rank: int | None = Field(None, description="1 = best; null when not ranked (constraint unmet, failed).")
    params: JsonObject
    value: float | None = Field(None, description="The objective's value (maxDrawdown: the drawdown itself).")
    feasible: bool
    stats: RunStats | None = Field(None, description="The trial's statistics, as a backtest run's (no equity).")
    error: str | None = None


class SweepHeatmap(CamelModel):
    """Best objective value per pair of two params' values (over the other params); null = no ranked trial."""

    x: str
    y: str
    x_values: list[Any]
    y_values: list[Any]
    values: list[list[float | None]] = Field(description="values[j][i] is for yValues[j], xValues[i].")


class WalkForwardFold(CamelModel):
    """One fold of a walk-forward sweep: its windows, the in-sample best trial and its out-of-sample result.

    Windows are half-open ``[from, to)`` (``to`` is the open time of the next bar, or the range's end):
    POST /backtests with a window's from/to replays exactly its bars."""

    fold: int = Field(description="0-based, in time order.")
    train_from: datetime
    train_to: datetime
    test_from: datetime
    test_to: datetime
    train_bars: int
    test_bars: int
    done: bool
    feasible_trials: int | None = Field(None, description="Trials that met the constraints in-sample.")
    best_trial: int | None = Field(None, description="The trial picked in-sample (null: none feasible).")
    params: JsonObject | None = None
    in_sample_value: float | None = Field(None, description="The objective over the train window.")
    in_sample_stats: RunStats | None = None
    out_of_sample_value: float | None = Field(None, description="The objective over the test window.")
    out_of_sample_stats: RunStats | None = None
    ratio: float | None = Field(None, description="outOfSampleValue / inSampleValue (null unless the in-sample "
                                                  "value is > 0); below 1 the pick did worse out-of-sample "
                                                  "(maxDrawdown: above 1).")
    error: str | None = Field(None, description="The strategy's error on the test window, if it raised.")


class WalkForwardSummary(CamelModel):
    """In-sample vs out-of-sample over a walk-forward sweep's folds: the overfitting made visible."""

    folds: int
    folds_done: int
    folds_compared: int = Field(description="Folds with both an in-sample and an out-of-sample value.")
    in_sample_mean: float | None = Field(None, description="Mean in-sample objective over the compared folds.")
    out_of_sample_mean: float | None = Field(None, description="Mean out-of-sample objective over them.")
    ratio_mean: float | None = Field(None, description="Mean of the folds' outOfSample / inSample ratios.")
    ratio_of_means: float | None = Field(None, description="outOfSampleMean / inSampleMean (null unless "
                                                           "inSampleMean > 0).")
    out_of_sample_return: float | None = Field(None, description="The test windows' total returns compounded.")


class SweepRead(CamelModel):
    """A sweep's definition and progress."""

    id: int
    status: RunStatus
    strategy: str
    symbol: str
    interval: str
    from_: datetime = Field(alias="from")
    to: datetime
    method: Literal["grid", "random"]
    space: dict[str, list[Any] | SearchDimension] = Field(
        description="What was swept: param → its values (grid), or → its range or values (random search).")
    seed: int | None = None
    objective: Objective
    min_trades: int
    execution: ExecutionSettings
    trials_total: int
    trials_done: int
    progress: float = Field(description="trialsDone / trialsTotal (walk-forward: the trial runs of the folds "
                                        "counted too, trialsTotal × (folds + 1) in all).")
    walk_forward: WalkForward | None = Field(None, description="The walk-forward settings (null: a plain sweep).")
    best_trial: int | None = None
    best_value: float | None = None
    cancel_requested: bool
    error: str | None = None
    runner: str
    created_by: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class SweepDetail(SweepRead):
    """GET /backtests/sweeps/{id}: the sweep, its ranked trials (best first), the best, a heatmap."""

    best: SweepTrial | None = None
    trials: list[SweepTrial] = Field(description="Ranked trials first (best first), then the unranked, by n.")
    heatmap: SweepHeatmap | None = Field(None, description="Over two swept params (null with fewer than two).")
    folds: list[WalkForwardFold] = Field(default_factory=list, description="Walk-forward folds, in time order "
                                                                           "(empty for a plain sweep).")
    degradation: WalkForwardSummary | None = Field(None, description="Walk-forward: in-sample vs out-of-sample "
                                                                     "(null for a plain sweep).")


class SweepPage(Page[SweepRead]):
    """Sweeps, newest first."""


class SweepCancel(CamelModel):
    """State of a sweep after POST /backtests/sweeps/{id}/cancel."""

    id: int
    status: RunStatus
    cancel_requested: bool


def objective_field(objective: str) -> str:
    """The stats key of a wire objective name."""
    return OBJECTIVE_FIELDS[objective]


def sweep_read_fields(row: Any) -> dict[str, Any]:
    """A sweeps row as SweepRead fields."""
    total = runs = row["trials_total"]
    done = row["trials_done"]
    walk_forward = row.get("walk_forward")
    if walk_forward is not None:  # each fold runs every trial once more, on its train window
        done += row.get("fold_trials_done") or 0
        runs *= 1 + walk_forward["folds"]
    best_value = row["best_value"]
    if best_value is not None and row["objective"] == "max_drawdown":
        best_value = -best_value
    return {"id": row["id"], "status": row["status"], "strategy": row["strategy"], "symbol": row["symbol"],
            "interval": row["interval"], "from": row["range_start"], "to": row["range_end"],
            "method": row["method"], "space": row["space"], "seed": row["seed"],
            "objective": OBJECTIVE_NAMES[row["objective"]], "min_trades": row["min_trades"],
            "execution": ExecutionSettings.model_validate(row["config"]), "trials_total": total,
            "trials_done": row["trials_done"], "progress": done / runs if runs else 1.0,
            "walk_forward": walk_forward,
            "best_trial": row["best_trial"], "best_value": best_value, "cancel_requested": row["cancel_requested"],
            "error": row["error"], "runner": row["runner"], "created_by": row["created_by"],
            "created_at": row["created_at"], "started_at": row["started_at"], "finished_at": row["finished_at"]}
