"""BreakerEvent: the typed breaker state change gordon-risk publishes on ``risk.events.>``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from gordon_manager.http.values import iso_utc

BreakerStateName = Literal["closed", "open", "half_open"]


class BreakerEvent(BaseModel):
    """One breaker transition gordon-risk published on risk.events.>. Read with snake_case or camelCase
    fields (unknown ones ignored); sent to the console with ours camelCase and ``data`` as gordon-risk wrote it."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, alias_generator=to_camel)

    breaker: str = Field(min_length=1, max_length=128, description="Breaker name (e.g. daily_loss).")
    state: BreakerStateName = Field(description="State after the transition.")
    reason: str | None = Field(None, max_length=2000, description="Why it changed.")
    at: AwareDatetime = Field(description="When gordon-risk changed it.")
    previous_state: BreakerStateName | None = Field(None, description="State before the transition.")
    scope: str | None = Field(None, max_length=128, description="What it guards: global, a symbol or a bot.")
    data: dict[str, Any] = Field(default_factory=dict, description=(
        "Breaker-specific figures (threshold, value…), keys as gordon-risk wrote them."))

    @field_serializer("at", when_used="json")
    def _at_utc(self, value: AwareDatetime):  # no return annotation: the schema stays a date-time
        return iso_utc(value)

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the console: our field names camelCase, ``at`` in UTC, ``data`` as sent."""
        return self.model_dump(mode="json", by_alias=True)
