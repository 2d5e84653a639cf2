"""Response models of the runs reads (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gordon_manager.execution.schemas import ExecutionRead
from gordon_manager.http.models import CamelModel, JsonMembers, Page, SparseModel
from gordon_manager.http.pagination import MAX_LIMIT
from gordon_manager.http.values import DecimalStr, FloatDecimalStr, Fraction, Rfc3339
from gordon_manager.runs.bot_events import BotEventRead

RunKind = Literal["backtest", "paper", "shadow", "live"]
RunStatus = Literal["queued", "running", "done", "failed", "cancelled", "stopped", "abandoned"]
DownsampleMethod = Literal["lttb", "minmax"]

_TS = "2024-03-01T12:00:00Z"



class RunRead(CamelModel):
    """One run (backtest, or a bot's paper/shadow/live run) as listed."""

    id: int = Field(examples=[42])
    kind: RunKind = Field(examples=["backtest"])
    bot_id: int | None = Field(None, examples=[7], description="The bot this run belongs to (null for ad-hoc backtests).")
    status: RunStatus = Field(examples=["done"])
    strategy: str = Field(examples=["sma_crossover"])
    params: dict[str, Any] = Field(examples=[{"fast": 10, "slow": 30}])
    symbol: str = Field(examples=["BTCUSDT"])
    interval: str = Field(examples=["1m"])
    range_start: datetime | None = Field(None, examples=["2024-01-01T00:00:00Z"])
    range_end: datetime | None = Field(None, examples=["2024-02-01T00:00:00Z"])
    progress: Fraction = Field(ge=0, le=1, examples=[1.0], description="Fraction done, 0..1.")
    error: str | None = None
    cancel_requested: bool = False
    created_by: str | None = Field(None, examples=["operator"])
    created_at: datetime = Field(examples=[_TS])
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    updated_at: datetime = Field(examples=[_TS])


class EquitySummary(CamelModel):
    """The run's equity series at a glance (from the rollups: no scan of the points)."""

    points: int = Field(examples=[525600], description="Number of equity points.")
    first_at: datetime = Field(examples=["2024-01-01T00:00:00Z"])
    last_at: datetime = Field(examples=["2024-12-31T23:59:00Z"])
    first_equity: FloatDecimalStr = Field(examples=["10000"])
    last_equity: FloatDecimalStr = Field(examples=["11234.5"])
    min_equity: FloatDecimalStr = Field(examples=["9420.1"])
    max_equity: FloatDecimalStr = Field(examples=["11890"])


class RunOpening(SparseModel):
    """What a bot run opened with (recovered from the ledger): a shadow bot starts from it."""

    qty: DecimalStr | None = Field(None, description="Base quantity held.")
    cash: DecimalStr | None = None
    fees_paid: DecimalStr | None = None
    realized_pnl: DecimalStr | None = None
    trip: list[JsonMembers] | None = Field(None, description="The fills of the open round trip, as the ledger stores them.")
    orders: list[JsonMembers] | None = Field(None, description="Open orders, as the ledger stores them.")
    entry: JsonMembers | None = Field(None, description="The open round trip's entry order, if any.")


class RunConfig(SparseModel):
    """The configuration a run used. A backtest's is its execution settings (``ExecutionConfig``, the members at
    the top level); a bot run's nests the bot's under ``execution``, with the bot's spec version, mode, the bot it
    shadows, what it opened with and the first bar it trades. Members not recorded are absent."""

    initial_cash: DecimalStr | None = Field(None, description="Backtests: starting quote balance.")
    taker_fee_bps: DecimalStr | None = None
    maker_fee_bps: DecimalStr | None = None
    slippage_bps: DecimalStr | None = None
    position_fraction: DecimalStr | None = None
    qty_step: DecimalStr | None = None
    price_step: DecimalStr | None = None
    cash_step: DecimalStr | None = None
    execution: ExecutionRead | None = Field(None, description="Bot runs: the bot's execution settings.")
    spec_version: int | None = Field(None, description="Bot runs: the bot's spec version the run started with.")
    mode: Literal["paper", "shadow", "live"] | None = Field(None, description="Bot runs: the bot's mode.")
    shadow_of: int | None = Field(None, description="Bot runs: the live bot a shadow bot follows.")
    opening: RunOpening | None = None
    trade_from: datetime | None = Field(None, description="Bot runs: bars before this only warm the strategy up.")


class BacktestTimings(SparseModel):
    """Where a backtest's time went (seconds), as its worker measured it."""

    load_bars_s: float | None = None
    engine_s: float | None = None
    engine_bars_per_s: float | None = None
    write_equity_s: float | None = None
    write_roundtrips_s: float | None = None
    total_s: float | None = Field(None, description="From the claim (startedAt) to the results written, every phase.")


class ExitReasonStats(SparseModel):
    """The round trips of a backtest closed for one reason."""

    reason: str = Field(examples=["exit"], description="exit (signal), stop_loss, take_profit, ...")
    trades: int = Field(examples=[12])
    win_rate: float = Field(examples=[0.5], description="Share with net PnL > 0.")
    net_pnl: DecimalStr = Field(examples=["12.5"], description="Sum of their net PnL (exact).")
    expectancy: float = Field(examples=[0.004], description="Mean trade return (net PnL / entry notional).")


class MonthStats(SparseModel):
    """One calendar month (UTC) of a backtest."""

    month: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", examples=["2024-01"])
    return_: float = Field(alias="return", examples=[0.021],
                           description="Equity at the month's last bar / at the previous month's last bar (the "
                                       "initial equity for the first) - 1: the months compound to totalReturn.")
    trades: int = Field(examples=[7], description="Round trips that exit in the month.")
    net_pnl: DecimalStr = Field(examples=["3.5"], description="Their net PnL (exact).")


class RunStats(SparseModel):
    """Statistics written when a run ends. A backtest's: returns, drawdown, Sharpe, win rate (fractions), counts,
    fees (exact) and timings; a bot run's: bars, cash, position and fees (exact). Members not recorded are
    absent. ``finalEquity``/``initialEquity`` are points of the equity series (decimal strings of its
    float8 values, like ``GET /runs/{id}/equity``)."""

    total_return: float | None = Field(None, description="final equity / initial equity - 1.")
    max_drawdown: float | None = Field(None, description="Largest fall from a running peak (positive fraction).")
    sharpe: float | None = Field(None, description="Annualised, per-bar simple returns, risk-free rate 0.")
    win_rate: float | None = Field(None, description="Share of round trips with net PnL > 0 (null without any).")
    trade_count: int | None = Field(None, description="Round trips.")
    total_fees: DecimalStr | None = None
    final_equity: FloatDecimalStr | None = None
    initial_equity: FloatDecimalStr | None = None
    exposure: float | None = Field(None, description="Bars closed holding a position / bars.")
    cagr: float | None = Field(None, description="Annualised return: (1 + totalReturn) ^ (1 / years) - 1 over the "
                                                 "bars' span (null when it overflows).")
    calmar: float | None = Field(None, description="cagr / max drawdown (null without drawdown).")
    buy_hold_return: float | None = Field(None, description="Holding the asset over the same bars: last close / "
                                                            "first close - 1.")
    volatility: float | None = Field(None, description="Annualised: std of per-bar returns x sqrt(bars per year).")
    sortino: float | None = Field(None, description="Annualised mean per-bar return / downside deviation (target "
                                                    "0); null without a losing bar.")
    avg_drawdown: float | None = Field(None, description="Mean of the drawdown episodes' depths.")
    max_drawdown_duration_s: float | None = Field(None, description="Longest drawdown episode, peak to recovery (or "
                                                                    "to the last bar), seconds.")
    avg_drawdown_duration_s: float | None = Field(None, description="Mean drawdown episode duration, seconds.")
    drawdown_count: int | None = Field(None, description="Drawdown episodes.")
    best_trade: float | None = Field(None, description="Best round trip: net PnL / entry notional.")
    worst_trade: float | None = Field(None, description="Worst round trip: net PnL / entry notional.")
    avg_trade: float | None = Field(None, description="Geometric mean of the trade returns.")
    profit_factor: float | None = Field(None, description="Winning net PnL / |losing net PnL| (null without a loss).")
    expectancy: float | None = Field(None, description="Arithmetic mean of the trade returns.")
    sqn: float | None = Field(None, description="System Quality Number: sqrt(n) x mean(net PnL) / std(net PnL).")
    net_pnl: DecimalStr | None = Field(None, description="Sum of the round trips' net PnL (exact).")
    by_exit_reason: list[ExitReasonStats] | None = Field(None, description="Round trips by exit reason.")
    by_month: list[MonthStats] | None = Field(None, description="By calendar month (UTC), in time order.")
    bars: int | None = None
    fill_count: int | None = None
    decision_count: int | None = None
    rejection_count: int | None = None
    timings: BacktestTimings | None = None
    cash: DecimalStr | None = Field(None, description="Bot runs: quote balance at the end.")
    position: DecimalStr | None = Field(None, description="Bot runs: base quantity held at the end.")
    fees_paid: DecimalStr | None = Field(None, description="Bot runs: fees paid.")


class RunDetail(RunRead):
    """One run with its configuration, statistics and equity summary."""

    config: RunConfig = Field(examples=[{"initialCash": "10000", "takerFeeBps": "10"}],
                              description="Execution configuration the run used.")
    stats: RunStats | None = Field(None, examples=[{"totalReturn": 0.12, "maxDrawdown": 0.08, "sharpe": 1.4}],
                                   description="Statistics written when the run finished (null before).")
    equity: EquitySummary | None = Field(None, description="Null while the run has no equity point.")


class RunPage(Page[RunRead]):
    """A page of runs, newest first."""


class RoundtripRead(CamelModel):
    """One closed trade. Money is exact: decimal strings."""

    id: int = Field(examples=[1001])
    run_id: int = Field(examples=[42])
    bot_id: int | None = Field(None, examples=[7])
    symbol: str = Field(examples=["BTCUSDT"])
    side: Literal["long", "short"] = Field(examples=["long"])
    entry_at: datetime = Field(examples=["2024-03-01T10:00:00Z"])
    exit_at: datetime = Field(examples=[_TS])
    entry_price: DecimalStr = Field(examples=["61000.5"])
    exit_price: DecimalStr = Field(examples=["61500"])
    qty: DecimalStr = Field(examples=["0.01"])
    gross_pnl: DecimalStr = Field(examples=["4.995"])
    fees: DecimalStr = Field(examples=["1.225"])
    net_pnl: DecimalStr = Field(examples=["3.77"])
    duration_s: float = Field(examples=[7200.0])
    exit_reason: str | None = Field(None, examples=["signal"])


class RoundtripPage(Page[RoundtripRead]):
    """A page of round trips in the order they closed (by id)."""


class EquityPointRead(CamelModel):
    """One mark-to-market point. Downsampled points carry only ``ts`` and ``equity``."""

    ts: datetime = Field(examples=[_TS])
    equity: FloatDecimalStr = Field(examples=["10512.25"])
    cash: FloatDecimalStr | None = Field(None, examples=["512.25"])
    position_qty: FloatDecimalStr | None = Field(None, examples=["0.15"])
    price: FloatDecimalStr | None = Field(None, examples=["66666.67"])


class BotEquityPointRead(EquityPointRead):
    """An equity point of one of the bot's runs."""

    run_id: int = Field(examples=[42])


class DownsampleInfo(CamelModel):
    """How a ``points=`` request was answered."""

    method: DownsampleMethod = Field(examples=["lttb"])
    requested_points: int = Field(examples=[2000])
    source_points: int = Field(examples=[10000000], description="Raw points in the requested range.")
    source: str = Field(examples=["rollup-3600s"],
                        description="`raw` (every point returned), `raw-buckets` (reduced from the raw points) "
                                    "or `rollup-<width>s` (reduced from the maintained rollups).")


class EquityPage(Page[EquityPointRead]):
    """Equity points of a run in time order: a keyset page, or with ``points=`` the whole range downsampled."""

    downsample: DownsampleInfo | None = Field(None, description="Set when `points` was given.")


class BotEquityPage(Page[BotEquityPointRead]):
    """Equity points of a bot's runs in time order (then run id)."""

    downsample: DownsampleInfo | None = Field(None, description="Set when `points` was given.")


class EquityQuery(BaseModel):
    """Query of GET /runs/{run_id}/equity (validated in one call: this is the console's hot path)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: int = Field(500, ge=1, le=MAX_LIMIT, description="Points per page.")
    cursor: str | None = Field(None, max_length=2048, description="Opaque cursor from `nextCursor`.")
    points: int | None = Field(None, ge=4, le=20000, description=(
        "Downsample the whole range to at most this many points (min/max-preserving: at least 4, the first, "
        "the last, the lowest and the highest); no paging."))
    method: DownsampleMethod = Field("lttb", description=(
        "`lttb` (shape, with the global extremes) or `minmax` (every bucket's low and high)."))
    start: Rfc3339 | None = Field(None, alias="from", description="Inclusive lower bound (RFC 3339 with offset).")
    end: Rfc3339 | None = Field(None, alias="to", description="Exclusive upper bound (RFC 3339 with offset).")


class BotEventPage(Page[BotEventRead]):
    """A page of a bot's events, newest first."""
