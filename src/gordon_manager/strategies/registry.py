"""Strategy registry: the built-ins, plus ``register`` for more."""

from __future__ import annotations

from gordon_manager.strategies import donchian_breakout, rsi_reversion, sma_crossover
from gordon_manager.strategies.base import StrategySpec
from gordon_manager.strategies.errors import UnknownStrategy

__all__ = ["get_strategy", "list_strategies", "register"]

_REGISTRY: dict[str, StrategySpec] = {}


def register(spec: StrategySpec) -> StrategySpec:
    """Add a strategy; a name can be registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"strategy {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_strategy(name: str) -> StrategySpec:
    """The spec registered as ``name``; UnknownStrategy if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategy(name, sorted(_REGISTRY)) from None


def list_strategies() -> list[StrategySpec]:
    """All registered specs, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


for _module in (sma_crossover, rsi_reversion, donchian_breakout):
    register(_module.SPEC)
