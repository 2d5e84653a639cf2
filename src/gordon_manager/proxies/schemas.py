"""Request and response models of the proxy routes (camelCase on the wire)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gordon_manager.http.models import CamelModel, json_value_members
from gordon_manager.http.values import FloatDecimalStr

MissingReason = Literal["error", "timeout", "no_data"]


class MissingQuery(CamelModel):
    """One summary query that produced no value, and why."""

    query: str = Field(description="Name of the summary field the query feeds.", examples=["equity"])
    reason: MissingReason = Field(description="error (Prometheus refused or was unreachable), timeout, "
                                              "or no_data (the query matched no series).")
    detail: str = Field("", examples=["prometheus did not answer within 5s"])


class MetricsSummary(CamelModel):
    """A bot's Prometheus rollup: six queries evaluated concurrently; missing ones are named."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "botId": 42, "at": "2026-01-05T12:00:00Z", "up": True, "decisionsPerMin": 1.0, "ordersPerMin": 0.2,
        "errorsPerMin": 0.0, "equity": "10234.5", "lastBarAgeSeconds": 12.4, "complete": True, "missing": []}]})

    bot_id: int
    at: datetime = Field(description="When the summary was evaluated (UTC).")
    up: bool | None = Field(None, description="Prometheus' last scrape of the bot's /metrics succeeded.")
    decisions_per_min: float | None = Field(None, description="Strategy decisions per minute (5m rate).")
    orders_per_min: float | None = Field(None, description="Orders (paper fills or live intents) per minute (5m rate).")
    errors_per_min: float | None = Field(None, description="Bot errors per minute (5m rate).")
    equity: FloatDecimalStr | None = Field(None, description="Latest mark-to-market equity the bot reports.")
    last_bar_age_seconds: float | None = Field(None, description="Seconds since the bot last processed a bar "
                                                                 "(its heartbeat; compare with its interval).")
    complete: bool = Field(description="True when all six queries produced a value.")
    missing: list[MissingQuery] = Field(default_factory=list)


class FiringAlert(CamelModel):
    """One active (not silenced, not inhibited) AlertManager alert, normalised."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "fingerprint": "4f2c1e0a9b8d7c6e", "alertname": "GordonBotTargetDown", "severity": "critical",
        "state": "active", "summary": "bot 42 /metrics is down", "description": "Prometheus has not scraped it for 2 minutes.",
        "startsAt": "2026-01-05T11:58:00Z", "endsAt": "2026-01-05T12:04:00Z", "updatedAt": "2026-01-05T12:00:00Z",
        "generatorUrl": "http://prometheus:9090/graph?g0.expr=up", "receivers": ["gordon-default"],
        "labels": {"alertname": "GordonBotTargetDown", "bot_id": "42", "severity": "critical"},
        "annotations": {"summary": "bot 42 /metrics is down"}}]})

    fingerprint: str
    alertname: str
    severity: str | None = None
    state: Literal["active"] = "active"
    summary: str | None = Field(None, description="The `summary` annotation.")
    description: str | None = Field(None, description="The `description` annotation.")
    starts_at: datetime
    ends_at: datetime | None = None
    updated_at: datetime | None = None
    generator_url: str | None = None
    receivers: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(description="Alert labels, verbatim (label names are data, not camelCased).")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations, verbatim.")

    @field_validator("starts_at", "ends_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # AlertManager reports in its local zone; the console gets UTC like every other time.
        return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value


class FiringAlerts(CamelModel):
    """Every firing alert, newest first (AlertManager returns them all; no pagination)."""

    items: list[FiringAlert]


class RiskCommand(CamelModel):
    """Body of resume / emergency-flatten, validated before it is forwarded to gordon-risk."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "drawdown breaker tripped", "scope": "global"}]})

    reason: str = Field(min_length=1, max_length=500, description="Why (recorded in the audit and by gordon-risk).")
    scope: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
                              description="What to act on (e.g. `global`, a bot or symbol); gordon-risk's default when absent.")


def _risk_answer_schema(schema: dict) -> None:
    json_value_members(schema)
    schema["examples"] = [{"status": "accepted", "halted": True}]


class RiskAnswer(BaseModel):
    """gordon-risk's JSON answer, returned unchanged with gordon-risk's status code: an object whose members
    gordon-risk defines (its own contract; the manager neither reads nor re-cases them)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_risk_answer_schema)
