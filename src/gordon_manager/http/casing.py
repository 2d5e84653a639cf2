"""snake_case ↔ camelCase conversion of JSON-like values (dict keys, recursively)."""

from __future__ import annotations

from typing import Any

from pydantic.alias_generators import to_camel, to_snake


def camelize(value: Any) -> Any:
    """Every dict key in ``value`` converted to camelCase, recursively."""
    if isinstance(value, dict):
        return {to_camel(k) if isinstance(k, str) else k: camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def snakify(value: Any) -> Any:
    """Every dict key in ``value`` converted to snake_case, recursively."""
    if isinstance(value, dict):
        return {to_snake(k) if isinstance(k, str) else k: snakify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snakify(v) for v in value]
    return value
