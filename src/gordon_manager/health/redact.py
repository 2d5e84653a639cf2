"""The config sanitiser behind GET /config: every secret redacted, URLs without credentials.

In any string value (secret or not):
* a URL's user-info: a password becomes ``***`` (``user:***@``); a user name alone becomes ``***``
  (``nats://TOKEN@host`` carries a token there);
* a URL query value whose key looks secret (``password``, ``token``, ``secret``, ``key``…);
* a libpq keyword/value string's ``password=`` / ``sslpassword=`` (quoted or not).
A secret setting that is not URL-shaped is ``***`` as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, create_model
from pydantic.alias_generators import to_camel

from gordon_manager.settings import Settings

REDACTED = "***"
_SECRET_KEY = re.compile(r"pass|pwd|token|secret|key|auth|credential|signature|sig$|session", re.IGNORECASE)
_LIBPQ_SECRET = re.compile(r"\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without credentials (see the module docstring); a string that does not parse is ``***``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:  # IPv6
            host = f"[{host}]"
        user = REDACTED if parts.password is None else f"{quote(parts.username or '', safe='')}:{REDACTED}"
        netloc = f"{user}@{host}" + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SECRET_KEY.search(k) else v) for k, v in pairs], safe="/:*")
    rebuilt = urlunsplit(parts._replace(netloc=netloc, query=query))
    if not netloc and url.startswith(f"{parts.scheme}://") and not rebuilt.startswith(f"{parts.scheme}://"):
        rebuilt = f"{parts.scheme}://" + rebuilt[len(parts.scheme) + 1:]  # postgresql:///db keeps its //
    return rebuilt


def _redact_libpq(value: str) -> str:
    return _LIBPQ_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", value)


def redact_text(value: str) -> str:
    """Any string with the credentials it may carry redacted."""
    if "://" in value:
        return redact_url(value)
    return _redact_libpq(value)


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
    if isinstance(value, str):
        return redact_text(value)
    return value


def redacted_config(settings: BaseModel) -> dict[str, Any]:
    """Settings as a plain dict with secrets replaced by ``***`` (or null when unset)."""
    return _clean(settings)


# -- what GET /config answers, as a model (for the OpenAPI document) ------------------------------------
def _redacted_type(annotation: Any) -> Any:
    """The JSON type ``_clean`` turns a setting of type ``annotation`` into."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _redacted_model(annotation, f"Effective{annotation.__name__}")
    args = getattr(annotation, "__args__", None)
    if args and type(None) in args:  # X | None
        inner = [a for a in args if a is not type(None)]
        return _redacted_type(inner[0]) | None if len(inner) == 1 else annotation
    if annotation is SecretStr:
        return str | None  # "***", a URL without its credentials, or null when empty
    if annotation is Path:
        return str
    return annotation


def _redacted_model(model: type[BaseModel], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation = _redacted_type(info.annotation)
        described = info.description
        if info.annotation is SecretStr or SecretStr in getattr(info.annotation, "__args__", ()):
            described = f"{described or ''} Redacted: `***`, or a URL without its credentials.".strip()
        fields[to_camel(field_name)] = (annotation, Field(description=described))
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=model.__doc__, **fields)


if TYPE_CHECKING:  # built at import time from Settings: to a type checker, a model
    EffectiveConfig: TypeAlias = BaseModel
else:
    EffectiveConfig = _redacted_model(Settings, "EffectiveConfig")
"""``redacted_config(settings)`` as a model: every setting (camelCase), secrets redacted."""

