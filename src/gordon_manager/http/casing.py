"""snake_case ↔ camelCase conversion of JSON-like values (dict keys, recursively).

One converter for everything leaving the service: our own JSON columns (params, execution, stats,
bot event data) in API bodies and in the rows /ws sends (``events.camel``). Keys a user or another
service chose (bot labels, breaker and overlay ``data``, a source's ``detail``) are never converted.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic.alias_generators import to_snake

# Keys are a small, repetitive set (column names, strategy params), so conversions are memoised;
# the cap keeps a stream of arbitrary user keys from growing the cache without bound.
_CACHE: dict[str, str] = {}
_CACHE_MAX = 4096
_INNER_UNDERSCORES = re.compile(r"(?<=[^_])_+([^_])")


def to_camel(key: str) -> str:
    """``bot_id`` → ``botId``; leading/trailing underscores and keys without ``_`` are kept as they are."""
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    converted = key if "_" not in key else _INNER_UNDERSCORES.sub(lambda m: m.group(1).upper(), key)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = converted
    return converted


def camelize(value: Any, keep: frozenset[str] = frozenset()) -> Any:
    """A copy of ``value`` with every dict key converted (nested dicts and lists too); values are untouched.

    The value under a key named in ``keep`` (e.g. ``labels``: keys a user chose) is copied as it is,
    keys included, at whatever depth that key appears.
    """
    if isinstance(value, dict):
        return {to_camel(k) if isinstance(k, str) else k: v if k in keep else camelize(v, keep)
                for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v, keep) for v in value]
    return value


def snakify(value: Any) -> Any:
    """Every dict key in ``value`` converted to snake_case, recursively."""
    if isinstance(value, dict):
        return {to_snake(k) if isinstance(k, str) else k: snakify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snakify(v) for v in value]
    return value
