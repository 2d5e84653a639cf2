"""The config sanitiser behind GET /config: every secret redacted, URLs without passwords."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.alias_generators import to_camel

from gordon_manager.db.urls import redact_url

REDACTED = "***"


def _clean(value: Any) -> Any:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if "://" in secret:
            return redact_url(secret)
        return REDACTED if secret else None
    if isinstance(value, BaseModel):
        return {to_camel(name): _clean(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redacted_config(settings: BaseModel) -> dict[str, Any]:
    """Settings as a plain dict with secrets replaced by ``***`` (or null when unset)."""
    return _clean(settings)
