"""Request and response models of parameter sweeps (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gordon_manager.backtests.schemas import INTERVAL_PATTERN, SYMBOL_PATTERN, ExecutionSettings, RunStatus
from gordon_manager.http.models import CamelModel, JsonObject, Page
from gordon_manager.runs.schemas import Rfc3339, RunStats

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
    progress: float = Field(description="trialsDone / trialsTotal.")
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
    total = row["trials_total"]
    best_value = row["best_value"]
    if best_value is not None and row["objective"] == "max_drawdown":
        best_value = -best_value
    return {"id": row["id"], "status": row["status"], "strategy": row["strategy"], "symbol": row["symbol"],
            "interval": row["interval"], "from": row["range_start"], "to": row["range_end"],
            "method": row["method"], "space": row["space"], "seed": row["seed"],
            "objective": OBJECTIVE_NAMES[row["objective"]], "min_trades": row["min_trades"],
            "execution": ExecutionSettings.model_validate(row["config"]), "trials_total": total,
            "trials_done": row["trials_done"], "progress": row["trials_done"] / total if total else 1.0,
            "best_trial": row["best_trial"], "best_value": best_value, "cancel_requested": row["cancel_requested"],
            "error": row["error"], "runner": row["runner"], "created_by": row["created_by"],
            "created_at": row["created_at"], "started_at": row["started_at"], "finished_at": row["finished_at"]}
