"""Registry API and typed, validated params."""

from __future__ import annotations

import json

import pydantic
import pytest

from gordon_manager.strategies import (
    InvalidParams,
    StrategySpec,
    UnknownStrategy,
    get_strategy,
    list_strategies,
    register,
)

BUILTINS = {"sma_crossover", "rsi_reversion", "donchian_breakout"}


def test_builtins_are_registered_sorted() -> None:
    names = [s.name for s in list_strategies()]
    assert BUILTINS <= set(names) and names == sorted(names)


def test_unknown_strategy_is_a_clear_error() -> None:
    with pytest.raises(UnknownStrategy) as info:
        get_strategy("nope")
    assert isinstance(info.value, LookupError) and info.value.name == "nope"
    assert "nope" in str(info.value) and "sma_crossover" in str(info.value)


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(get_strategy("sma_crossover"))


@pytest.mark.parametrize("spec", list_strategies(), ids=lambda s: s.name)
def test_spec_surface(spec: StrategySpec) -> None:
    assert spec.description
    schema = spec.params_schema()
    json.dumps(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    defaults = spec.default_params()
    assert isinstance(defaults, spec.params_model)
    assert spec.parse_params(None) == defaults and spec.parse_params(defaults) is defaults
    assert spec.parse_params(defaults.model_dump()) == defaults
    assert spec.warmup(defaults) >= 2
    for example in spec.examples:
        spec.parse_params(example)
    with pytest.raises(pydantic.ValidationError):  # frozen
        setattr(defaults, next(iter(schema["properties"])), 3)
    with pytest.raises(InvalidParams) as info:
        spec.parse_params({"no_such_param": 1})
    assert info.value.errors and info.value.strategy == spec.name


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("sma_crossover", {"fast": 30, "slow": 30}, "fast must be < slow"),
        ("sma_crossover", {"fast": 0}, "fast"),
        ("rsi_reversion", {"oversold": 70, "overbought": 30}, "oversold must be < overbought"),
        ("rsi_reversion", {"period": 1}, "period"),
        ("rsi_reversion", {"stop_pct": 1.5}, "stop_pct"),
        ("donchian_breakout", {"entry_period": 1}, "entry_period"),
        ("donchian_breakout", {"take_profit_pct": 0}, "take_profit_pct"),
    ],
)
def test_params_constraints(name: str, params: dict, field: str) -> None:
    with pytest.raises(InvalidParams, match=field):
        get_strategy(name).parse_params(params)


def test_params_from_another_model_are_revalidated() -> None:
    sma = get_strategy("sma_crossover")
    other = get_strategy("donchian_breakout").default_params()
    with pytest.raises(InvalidParams):
        sma.parse_params(other)
