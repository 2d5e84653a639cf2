"""Request and response models of the deploys API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from gordon_manager.bots.schemas import ExecutionInput
from gordon_manager.execution.schemas import ExecutionRead
from gordon_manager.http.models import CamelModel, JsonObject, SparseModel
from gordon_manager.http.values import DecimalStr, FloatDecimalStr

DeployState = Literal["pending", "shadowing", "comparing", "swapping", "promoted", "aborted", "failed",
                      "inconclusive"]
ServiceDeployState = Literal["pending", "starting", "health_checking", "swapping", "done", "aborted", "failed"]
SERVICE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,62}$"
_TS = "2026-05-17T10:00:00Z"


class DeployPromote(CamelModel):
    """POST /bots/{id}/deploy/promote: what the candidate changes (omitted = the live bot's value)."""

    image: str | None = Field(None, max_length=255, examples=["ghcr.io/dlepaux/gordon-manager:3.8.1"],
                              description="Candidate image (allow-listed like PUT /bots).")
    strategy: str | None = Field(None, min_length=1, max_length=64, examples=["sma_crossover"])
    symbol: str | None = Field(None, max_length=32, description=(
        "Must be the live bot's (or omitted): a shadow-compare on another market proves nothing (422)."))
    interval: str | None = Field(None, max_length=8, description="Must be the live bot's (or omitted), like symbol.")
    params: JsonObject | None = Field(None, examples=[{"fast": 8, "slow": 30}],
                                          description="Full parameter set of the candidate (not merged).")
    execution: ExecutionInput | None = Field(None, description="Candidate execution settings (full set).")
    compare_window: int | None = Field(None, ge=1, le=1_000_000, examples=[60],
                                       description="Bars to compare before swapping (default: settings).")
    match_threshold: float | None = Field(None, ge=0, le=1, examples=[0.95],
                                          description="Match rate of the action bars needed to swap (default: "
                                                      "settings).")
    min_actions: int | None = Field(None, ge=1, le=100_000, examples=[5],
                                    description="Action bars (either bot acts) needed before a swap (default: "
                                                "settings).")
    max_window: int | None = Field(None, ge=1, le=10_000_000, examples=[600],
                                   description="Bars the compare may extend to while short of evidence, then "
                                               "inconclusive (default: settings; at least compareWindow).")
    lease_ttl_s: float | None = Field(None, ge=1, le=3600, examples=[30],
                                      description="Lease time-to-live; a deploy whose lease lapses aborts.")


class DeployCandidate(SparseModel):
    """The spec a deploy tries: the live bot's with the promote request's changes."""

    strategy: str | None = Field(None, examples=["sma_crossover"])
    params: dict[str, Any] | None = Field(None, examples=[{"fast": 8, "slow": 30}], description="Strategy parameters.")
    execution: ExecutionRead | None = None
    image: str | None = Field(None, examples=["ghcr.io/dlepaux/gordon-manager:3.8.1"])


class DeployDecision(SparseModel):
    """What one bot decided on a bar, and the position it held after it (decimals as exact strings; a member not
    recorded is absent)."""

    side: Literal["buy", "sell", "hold"]
    qty: DecimalStr | None = Field(None, examples=["0.5"])
    order_type: Literal["market", "limit", "stop", "none"] | None = None
    price: DecimalStr | None = Field(None, description="Limit price or stop trigger (none for market and hold).")
    reason: str | None = Field(None, examples=["signal"])
    position: DecimalStr | None = Field(None, description="Base quantity held after the bar (null: not known).")


class DeployRead(CamelModel):
    """One green/blue deploy of a bot."""

    id: int = Field(examples=[7])
    bot_id: int = Field(examples=[42])
    candidate_bot_id: int | None = Field(None, examples=[43], description="The shadow bot running the candidate.")
    state: DeployState = Field(examples=["comparing"])
    from_version: int = Field(description="Live bot version when the deploy started.")
    to_version: int | None = Field(None, description="Live bot version after the swap.")
    from_spec_version: int | None = None
    candidate: DeployCandidate = Field(examples=[{"strategy": "sma_crossover", "params": {"fast": 8, "slow": 30}}],
                                       description="The candidate spec (strategy, params, execution, image).")
    compare_window: int = Field(examples=[60])
    match_threshold: float = Field(examples=[0.95])
    lease_ttl_s: float = Field(examples=[30.0])
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(None, examples=[_TS])
    min_actions: int = Field(examples=[5], description="Action bars needed before a swap.")
    max_window: int = Field(examples=[600], description="Bars the compare may extend to, then inconclusive.")
    bars_compared: int = Field(examples=[41], description="Bars walked (idle ones included).")
    idle_skipped: int = Field(examples=[33], description="Bars where neither bot acted: skipped, not evidence.")
    actions_compared: int = Field(examples=[8], description="Action bars compared (matches + divergences).")
    matches: int = Field(examples=[8], description="Action bars on which both bots did the same.")
    divergences: int = Field(examples=[0], description="Action bars on which they did not.")
    evidence_needed: int = Field(examples=[0], description="Action bars still needed before a swap.")
    match_rate: float | None = Field(None, examples=[1.0],
                                     description="matches / actionsCompared (null before any action bar).")
    forced_by: str | None = Field(None, description="Who promoted an inconclusive deploy with force.")
    live_run_id: int | None = None
    candidate_run_id: int | None = None
    compared_through: datetime | None = Field(None, description="Bar time up to which both runs were compared.")
    compare_from: datetime | None = Field(None, description=(
        "The compare covers bars after this: the live run's first traded bar, past both strategies' warm-up."))
    reason: str | None = Field(None, examples=["lease lost"])
    actor: str = Field(examples=["operator"])
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class DivergenceRead(CamelModel):
    """An action bar on which the candidate acted differently: both decisions and positions after it."""

    id: int
    bar_at: datetime = Field(examples=[_TS])
    live_decision: DeployDecision = Field(examples=[{"side": "buy", "qty": "0.5", "orderType": "market",
                                                     "price": "64000.1", "reason": "signal", "position": "0"}])
    candidate_decision: DeployDecision = Field(examples=[{"side": "hold", "qty": "0", "orderType": "none",
                                                          "price": None, "reason": None, "position": "0"}])
    at: datetime


class CompareRoundTrip(CamelModel):
    """A round trip one side closed in the compared window (money and quantities as exact strings)."""

    entry_at: datetime
    exit_at: datetime
    entry_price: DecimalStr = Field(examples=["61000.5"])
    exit_price: DecimalStr = Field(examples=["61500"])
    qty: DecimalStr = Field(examples=["0.01"])
    net_pnl: DecimalStr = Field(examples=["3.77"])
    exit_reason: str | None = None


RoundTripRead = CompareRoundTrip  # the name it had (deploys.service)


class SideOutcome(CamelModel):
    """One bot's round trips closed in the compared window."""

    roundtrips: int = Field(examples=[3])
    net_pnl: DecimalStr = Field(examples=["12.5"], description="Sum of their net PnL.")
    items: list[CompareRoundTrip] = Field(default_factory=list, description="The first 20.")


class DeployOutcomes(CamelModel):
    """Outcomes over the compared window: equity tracking and both sides' round trips."""

    bars: int = Field(examples=[60], description="Bars both equity curves have in the window.")
    equity_max_abs_diff: FloatDecimalStr | None = Field(None, description="max |candidate − live| equity, quote currency.")
    equity_max_rel_diff: float | None = Field(None, description="The same relative to the live bot's equity.")
    equity_last_diff: FloatDecimalStr | None = Field(None, description="candidate − live equity at the last compared bar.")
    live: SideOutcome
    candidate: SideOutcome


class DeployStatus(DeployRead):
    """Live progress of the bot's current (or latest) deploy, with the latest divergences and outcomes."""

    latest_divergences: list[DivergenceRead] = Field(default_factory=list)
    outcomes: DeployOutcomes | None = Field(None, description="Null before the compare started.")


class ShadowPromote(CamelModel):
    """POST /bots/{id}/promote: without the evidence of a deploy, a shadow is promoted only with force."""

    force: bool = Field(False, description="Promote without (enough) shadow-compare evidence; audited.")


def _must_be_true(schema: dict[str, Any]) -> None:
    schema.pop("default", None)
    schema["enum"] = [True]


class ForcePromote(CamelModel):
    """POST /bots/{id}/deploys/{deployId}/promote: an inconclusive deploy is promoted only with force."""

    # Documented as what it must be (required, true); an omitted or false force still reaches the
    # service, whose 422 says why.
    model_config = ConfigDict(json_schema_extra={"required": ["force"]})

    force: bool = Field(False, description="Must be true: promote although the compare was inconclusive.",
                        json_schema_extra=_must_be_true)


class DivergencePage(CamelModel):
    """A page of a deploy's divergences, oldest first."""

    items: list[DivergenceRead]
    next_cursor: str | None = None


class DeployPage(CamelModel):
    """A page of deploys, newest first."""

    items: list[DeployRead]
    next_cursor: str | None = None


class HealthCheck(CamelModel):
    """How dockerd decides the new container is healthy (Docker HEALTHCHECK, run inside the container)."""

    http_path: str | None = Field(None, pattern=r"^/[A-Za-z0-9._~/?=&%-]{0,255}$", examples=["/health"],
                                  description="HTTP GET path probed with wget on 127.0.0.1 (with port).")
    port: int | None = Field(None, ge=1, le=65535, examples=[8080])
    command: list[str] | None = Field(None, min_length=1, max_length=32,
                                      description="Or: a command run in the container (exec form); 0 = healthy.")
    interval_s: float = Field(2.0, ge=0.05, le=300, description="Between two probes.")
    timeout_s: float = Field(5.0, ge=0.05, le=300, description="One probe's timeout.")
    retries: int = Field(3, ge=1, le=100, description="Consecutive failures that make it unhealthy.")
    start_period_s: float = Field(0.0, ge=0, le=3600, description="Grace period before failures count.")
    wait_s: float | None = Field(None, ge=1, le=3600, description=(
        "Give up waiting for healthy after this long "
        "(default: start period + (retries + 1) × (interval + timeout))."))

    @model_validator(mode="after")
    def _one_kind(self) -> HealthCheck:
        http = self.http_path is not None or self.port is not None
        if http == (self.command is not None):
            raise ValueError("give either httpPath and port, or command")
        if http and (self.http_path is None or self.port is None):
            raise ValueError("an HTTP health check needs both httpPath and port")
        if self.command is not None and any(not arg or "\x00" in arg for arg in self.command):
            raise ValueError("command arguments must be non-empty strings without NUL")
        return self

    def wait_budget_s(self) -> float:
        """How long to wait for healthy before failing the deploy."""
        if self.wait_s is not None:
            return self.wait_s
        return self.start_period_s + (self.retries + 1) * (self.interval_s + self.timeout_s)


class ServiceDeployCreate(CamelModel):
    """POST /deploys/service: roll one Gordon service container to a new image."""

    service: str = Field(pattern=SERVICE_PATTERN, examples=["gordon-risk"],
                         description="Service (and container) name.")
    image: str = Field(min_length=1, max_length=255, examples=["ghcr.io/dlepaux/gordon-risk:2.4.1"])
    health_check: HealthCheck


class ServiceDeployRead(CamelModel):
    """One service deploy."""

    id: int = Field(examples=[3])
    service: str = Field(examples=["gordon-risk"])
    old_image: str | None = None
    new_image: str
    old_container_id: str | None = None
    new_container_id: str | None = None
    health_check: HealthCheck
    state: ServiceDeployState = Field(examples=["health_checking"])
    reason: str | None = Field(None, examples=["health check failed: unhealthy after 3 probes"])
    actor: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    health_deadline_at: datetime | None = None
    cleaned_up_at: datetime | None = None


class ServiceDeployPage(CamelModel):
    """A page of service deploys, newest first."""

    items: list[ServiceDeployRead]
    next_cursor: str | None = None
