"""Response models of the strategy registry and the bot defaults (camelCase on the wire)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.alias_generators import to_camel

from gordon_manager.execution.schemas import ExecutionRead
from gordon_manager.http.models import CamelModel, Page, SparseModel

_SMA_SCHEMA = {"type": "object", "title": "SmaCrossoverParams", "additionalProperties": False,
               "properties": {"fast": {"type": "integer", "default": 10, "minimum": 1},
                              "slow": {"type": "integer", "default": 30, "minimum": 2}}}


def camel_schema(schema: Any) -> Any:
    """A JSON schema whose property names (and ``required`` entries) are camelCase, like the API's params."""
    if isinstance(schema, list):
        return [camel_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {to_camel(name): camel_schema(sub) for name, sub in value.items()}
        elif key == "required" and isinstance(value, list):
            out[key] = [to_camel(name) for name in value]
        else:
            out[key] = camel_schema(value)
    return out


JsonType = Literal["object", "array", "string", "number", "integer", "boolean", "null"]


class ParamSchema(SparseModel):
    """A JSON Schema (2020-12) of strategy parameters, with the keywords the strategies use; a keyword absent is
    not sent."""

    type: JsonType | None = None
    title: str | None = None
    description: str | None = None
    default: Any = Field(None, description="Any JSON value of the parameter's type.")
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: int | float | None = None
    exclusive_maximum: int | float | None = None
    multiple_of: int | float | None = None
    enum: list[Any] | None = None
    properties: dict[str, ParamSchema] | None = Field(None, description="camelCase parameter name → its schema.")
    required: list[str] | None = None
    additional_properties: bool | None = None
    any_of: list[ParamSchema] | None = None
    items: ParamSchema | None = None


class StrategyRead(CamelModel):
    """One registered strategy: what it does, its parameters and their defaults."""

    name: str = Field(examples=["sma_crossover"], description="The name a bot config or backtest refers to.")
    description: str = Field(examples=["Long when the fast SMA crosses above the slow SMA; flat when it crosses below."])
    params_schema: ParamSchema = Field(examples=[_SMA_SCHEMA],
                                          description="JSON schema of the params object (camelCase property names).")
    default_params: dict[str, Any] = Field(examples=[{"fast": 10, "slow": 30}],
                                           description="Every parameter with its default value.")
    warmup_bars: int = Field(examples=[31], description="Bars of history the default params need before a signal.")
    examples: list[dict[str, Any]] = Field(default_factory=list, examples=[[{"fast": 3, "slow": 8}]],
                                           description="Example params sets.")


class StrategyList(Page[StrategyRead]):
    """Every registered strategy, sorted by name (one page: the registry is small)."""


class BotDefaults(CamelModel):
    """Defaults for a new bot config, from the strategy registry, ExecutionConfig and the settings."""

    strategy: str = Field(examples=["sma_crossover"], description="Default strategy.")
    params: dict[str, Any] = Field(examples=[{"fast": 10, "slow": 30}], description="Its default params.")
    execution: ExecutionRead = Field(description="Default execution settings (ExecutionConfig).")
    mode: Literal["paper", "shadow", "live"] = Field(examples=["paper"])
    symbol: str = Field(examples=["BTCUSDT"])
    interval: str = Field(examples=["1m"])
    image: str = Field(examples=["ghcr.io/dlepaux/gordon-manager:3.8.0"], description="GORDON_MANAGER_BOT_IMAGE.")
    desired_state: Literal["running", "paused", "stopped"] = Field(examples=["stopped"])
    strategies: list[str] = Field(examples=[["donchian_breakout", "rsi_reversion", "sma_crossover"]],
                                  description="Names a bot may use (details at GET /strategies).")
