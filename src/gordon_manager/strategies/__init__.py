"""Strategies: a registry of specs, each a frozen params model plus a vectorized causal signal."""

from gordon_manager.strategies.base import OHLCV, Signals, StrategySpec
from gordon_manager.strategies.errors import InvalidParams, StrategyError, UnknownStrategy
from gordon_manager.strategies.registry import get_strategy, list_strategies, register

__all__ = [
    "OHLCV",
    "InvalidParams",
    "Signals",
    "StrategyError",
    "StrategySpec",
    "UnknownStrategy",
    "get_strategy",
    "list_strategies",
    "register",
]
