"""Response models of the console reads (camelCase on the wire). Money is exact: decimal strings."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from gordon_manager.http.models import CamelModel, JsonMembers, Page
from gordon_manager.http.values import DecimalStr, FloatDecimalStr, Fraction

_TS = "2024-03-01T12:00:00Z"
Decision = Literal["allow", "block", "scale", "flatten"]


# -- portfolio -------------------------------------------------------------------------------------
class PositionRead(CamelModel):
    """One row of ``trading.portfolio_state``: a symbol held by a bot (or the account)."""

    symbol: str = Field(examples=["BTCUSDT"])
    qty: DecimalStr = Field(examples=["0.015"])
    avg_entry_price: DecimalStr | None = Field(None, examples=["60100.5"])
    mark_price: DecimalStr | None = Field(None, examples=["61000"])
    cash: DecimalStr = Field(examples=["9100.25"])
    exposure: DecimalStr = Field(examples=["915"], description="Signed notional as reported by the executor.")
    unrealized_pnl: DecimalStr = Field(examples=["13.49"])
    updated_at: datetime = Field(examples=[_TS])


class LiveRunRead(CamelModel):
    """A bot's newest running paper/shadow/live run and its newest equity point."""

    id: int = Field(examples=[42])
    kind: Literal["paper", "shadow", "live"] = Field(examples=["paper"])
    symbol: str = Field(examples=["BTCUSDT"])
    started_at: datetime | None = Field(None, examples=["2024-03-01T00:00:00Z"])
    equity: FloatDecimalStr | None = Field(None, examples=["10013.49"])
    equity_at: datetime | None = Field(None, examples=[_TS])
    position_qty: FloatDecimalStr | None = Field(None, examples=["0.015"])


class PortfolioTotals(CamelModel):
    """Sums over the positions (and over the live runs for ``equity``)."""

    cash: DecimalStr = Field(examples=["9100.25"])
    exposure: DecimalStr = Field(examples=["915"], description="Σ exposure (net).")
    gross_exposure: DecimalStr = Field(examples=["915"], description="Σ |exposure|.")
    unrealized_pnl: DecimalStr = Field(examples=["13.49"])
    equity: FloatDecimalStr | None = Field(None, examples=["10013.49"], description="Σ newest equity of the live runs.")
    positions: int = Field(examples=[1], description="Positions with a non-zero quantity.")


class BotPortfolio(CamelModel):
    """One bot's (or, with ``botId`` null, the account's unassigned) positions, totals and live run."""

    bot_id: int | None = Field(None, examples=[7])
    bot_name: str | None = Field(None, examples=["btc-sma-1m"])
    mode: str | None = Field(None, examples=["paper"])
    positions: list[PositionRead]
    totals: PortfolioTotals
    live_run: LiveRunRead | None = None


class PortfolioRead(CamelModel):
    """Current positions, cash and exposure per bot and in total."""

    as_of: datetime = Field(examples=[_TS])
    bots: list[BotPortfolio]
    total: PortfolioTotals


# -- performance -----------------------------------------------------------------------------------
class PerformanceFigures(CamelModel):
    """Time-weighted returns, drawdown and Sharpe of one equity series (fractions, not percent)."""

    return_1d: float | None = Field(None, alias="return1d", examples=[0.004])
    return_7d: float | None = Field(None, alias="return7d", examples=[0.021])
    return_30d: float | None = Field(None, alias="return30d", examples=[0.057])
    return_all: float | None = Field(None, examples=[0.183])
    max_drawdown: float | None = Field(None, examples=[0.081], description="Positive fraction of the peak.")
    sharpe: float | None = Field(None, examples=[1.42], description="Annualised (√365) from daily returns.")
    equity: FloatDecimalStr | None = Field(None, examples=["11830.2"], description="Value of the runs at the newest hour.")
    since: datetime | None = Field(None, examples=["2024-01-01T00:00:00Z"], description="First equity point used.")
    until: datetime | None = Field(None, examples=[_TS], description="Last equity point used.")
    samples: int = Field(0, examples=[1440], description="Hourly samples the figures were computed from.")


class BotPerformance(PerformanceFigures):
    """Performance of one bot across its runs."""

    bot_id: int = Field(examples=[7])
    bot_name: str = Field(examples=["btc-sma-1m"])


class PerformanceRead(CamelModel):
    """Portfolio and per-bot performance over 1d/7d/30d/all (formulas in the README)."""

    as_of: datetime = Field(examples=[_TS])
    kinds: list[str] = Field(examples=[["paper", "shadow", "live"]], description="Run kinds included.")
    portfolio: PerformanceFigures
    bots: list[BotPerformance]


# -- overlays --------------------------------------------------------------------------------------
class OverlayDecisionRead(CamelModel):
    """One decision of a risk overlay on a bot's intent."""

    id: int = Field(examples=[501])
    bot_id: int | None = Field(None, examples=[7])
    overlay: str = Field(examples=["volatility_gate"])
    decision: Decision = Field(examples=["block"])
    reason: str | None = Field(None, examples=["atr above 3x median"])
    data: JsonMembers = Field(examples=[{"atrRatio": 3.4}],
                              description="What the overlay recorded with its decision, as it wrote it.")
    at: datetime = Field(examples=[_TS])


class OverlayDecisionPage(Page[OverlayDecisionRead]):
    """A page of overlay decisions, newest first."""


class DecisionCount(CamelModel):
    """How often one overlay took one decision in the window."""

    decision: Decision = Field(examples=["block"])
    count: int = Field(examples=[12])
    share: float = Field(examples=[0.25], description="count / the overlay's decisions in the window.")
    per_hour: float = Field(examples=[0.5], description="count / window length in hours.")


class OverlaySummaryItem(CamelModel):
    """One overlay's decisions in the window."""

    overlay: str = Field(examples=["volatility_gate"])
    total: int = Field(examples=[48])
    decisions: list[DecisionCount]


class OverlaySummary(CamelModel):
    """Counts and rates by overlay and decision over [from, to)."""

    start: datetime = Field(alias="from", examples=["2024-02-29T12:00:00Z"])
    end: datetime = Field(alias="to", examples=[_TS])
    total: int = Field(examples=[48])
    overlays: list[OverlaySummaryItem]


# -- data ------------------------------------------------------------------------------------------
class SourceHealth(CamelModel):
    """Freshness of one data source with its stale threshold applied."""

    source: str = Field(examples=["binance_klines"])
    last_update_at: datetime | None = Field(None, examples=[_TS])
    last_data_at: datetime | None = Field(None, examples=["2024-03-01T11:59:00Z"])
    age_seconds: float | None = Field(None, examples=[42.0], description="now - lastUpdateAt (null: never updated).")
    stale_after_seconds: float = Field(examples=[300.0])
    threshold: Literal["source", "default"] = Field(examples=["source"], description=(
        "`source`: the row's stale_after_seconds; `default`: GORDON_MANAGER_SOURCE_STALE_AFTER_S."))
    stale: bool = Field(examples=[False], description="Never updated, or ageSeconds > staleAfterSeconds.")
    detail: JsonMembers = Field(examples=[{"symbols": 12}], description="What the source reported, as it wrote it.")


class SourceHealthRead(CamelModel):
    """Every source's freshness."""

    as_of: datetime = Field(examples=[_TS])
    stale_count: int = Field(examples=[0])
    sources: list[SourceHealth]


class SourceStatus(CamelModel):
    """Pipeline status of one source: when it last ran and how far behind its data is."""

    source: str = Field(examples=["binance_klines"])
    last_update_at: datetime | None = Field(None, examples=[_TS])
    last_data_at: datetime | None = Field(None, examples=["2024-03-01T11:59:00Z"])
    update_age_seconds: float | None = Field(None, examples=[42.0], description="now - lastUpdateAt.")
    data_lag_seconds: float | None = Field(None, examples=[60.0], description="now - lastDataAt.")
    stale: bool = Field(examples=[False])


class BackfillCounts(CamelModel):
    """Backfill jobs by status."""

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0


class DataStatus(CamelModel):
    """The data pipeline at a glance."""

    as_of: datetime = Field(examples=[_TS])
    status: Literal["ok", "degraded", "empty"] = Field(examples=["ok"], description=(
        "`empty`: no source reported yet; `degraded`: a source is stale or a backfill job failed in 24 h."))
    sources: list[SourceStatus]
    backfill: BackfillCounts
    failed_backfills_24h: int = Field(alias="failedBackfills24h", examples=[0])


class InventoryItem(CamelModel):
    """What one market-data series holds."""

    dataset: Literal["klines", "funding_rates", "open_interest", "metrics", "macro"] = Field(examples=["klines"])
    symbol: str | None = Field(None, examples=["BTCUSDT"], description="Symbol, or the series name for macro.")
    interval: str | None = Field(None, examples=["1m"], description="Klines interval.")
    name: str | None = Field(None, examples=[None], description="Metric name (metrics only).")
    first_at: datetime = Field(examples=["2024-01-01T00:00:00Z"])
    last_at: datetime = Field(examples=[_TS])
    rows: int = Field(examples=[87120])
    gaps: int | None = Field(None, examples=[2], description="Holes between consecutive bars (klines only).")
    missing_bars: int | None = Field(None, examples=[5], description="Bars absent inside [firstAt, lastAt].")
    first_gap_at: datetime | None = Field(None, examples=["2024-01-15T03:00:00Z"],
                                          description="Open time of the first missing bar.")


class DataInventory(CamelModel):
    """Every market-data series (read through the v_*_reader views)."""

    as_of: datetime = Field(examples=[_TS])
    items: list[InventoryItem]


class BackfillJobRead(CamelModel):
    """One backfill job of the data pipeline."""

    id: int = Field(examples=[12])
    source: str = Field(examples=["binance_klines"])
    symbol: str | None = Field(None, examples=["BTCUSDT"])
    interval: str | None = Field(None, examples=["1m"])
    range_start: datetime | None = Field(None, examples=["2024-01-01T00:00:00Z"])
    range_end: datetime | None = Field(None, examples=["2024-02-01T00:00:00Z"])
    status: Literal["queued", "running", "done", "failed", "cancelled"] = Field(examples=["running"])
    progress: Fraction = Field(examples=[0.4], description="Fraction done, 0..1, rounded to 4 decimals.")
    rows_written: int = Field(examples=[17856])
    error: str | None = None
    created_at: datetime = Field(examples=[_TS])
    updated_at: datetime = Field(examples=[_TS])


class BackfillJobPage(Page[BackfillJobRead]):
    """A page of backfill jobs, newest first."""


# -- exchange --------------------------------------------------------------------------------------
class ExchangePing(CamelModel):
    """Whether the exchange's public REST API answers (no keys are involved)."""

    reachable: bool = Field(examples=[True])
    latency_ms: float | None = Field(None, examples=[38.2], description="Round trip of the ping (null if none).")
    status_code: int | None = Field(None, examples=[200])
    reason: str | None = Field(None, examples=[None], description="Why it is unreachable (timeout, refused, HTTP 503…).")
    url: str = Field(examples=["https://api.binance.com/api/v3/ping"])
    checked_at: datetime = Field(examples=[_TS])
