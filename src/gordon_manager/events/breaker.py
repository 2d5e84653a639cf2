"""BreakerEvent: the typed breaker state change gordon-risk publishes on ``risk.events.>``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from gordon_manager.events.camel import camelize
from gordon_manager.events.protocol import iso_utc

BreakerStateName = Literal["closed", "open", "half_open"]


class BreakerEvent(BaseModel):
    """One breaker transition. Accepts snake_case or camelCase fields; unknown fields are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, alias_generator=to_camel)

    breaker: str = Field(min_length=1, max_length=128, description="Breaker name (e.g. daily_loss).")
    state: BreakerStateName = Field(description="State after the transition.")
    reason: str | None = Field(None, max_length=2000, description="Why it changed.")
    at: AwareDatetime = Field(description="When gordon-risk changed it.")
    previous_state: BreakerStateName | None = Field(None, description="State before the transition.")
    scope: str | None = Field(None, max_length=128, description="What it guards: global, a symbol or a bot.")
    data: dict[str, Any] = Field(default_factory=dict, description="Breaker-specific figures (threshold, value…).")

    def wire(self) -> dict[str, Any]:
        """The camelCase JSON object sent to the console."""
        return {"breaker": self.breaker, "state": self.state, "reason": self.reason, "at": iso_utc(self.at),
                "previousState": self.previous_state, "scope": self.scope, "data": camelize(self.data)}
