"""Strategy errors: one small hierarchy callers can map to HTTP problems."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["InvalidParams", "StrategyError", "UnknownStrategy"]


class StrategyError(Exception):
    """Base class of strategy errors."""


class UnknownStrategy(StrategyError, LookupError):
    """No strategy is registered under the requested name."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        super().__init__(f"unknown strategy {name!r}; available: {', '.join(available) or 'none'}")


class InvalidParams(StrategyError, ValueError):
    """Parameters failed validation; ``errors`` holds pydantic's field errors."""

    def __init__(self, strategy: str, errors: Sequence[Mapping[str, Any]]) -> None:
        self.strategy = strategy
        self.errors = errors
        detail = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in errors)
        super().__init__(f"invalid params for {strategy!r}: {detail}")
