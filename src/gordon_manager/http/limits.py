"""Size limits of the free-form parts of a request (labels, params, execution): 422 naming the field.

Everything stored is later served back (every /bots page, every /ws replay), so an oversized value
is refused before it is stored, not merely capped by the body limit. Each refusal is counted in
``gordon_manager_refusals_total`` (label_size, params_size).
"""

from __future__ import annotations

from typing import Any

import orjson

from gordon_manager.errors import Unprocessable
from gordon_manager.observability import metrics
from gordon_manager.settings import Settings


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def size_errors(settings: Settings, *, labels: dict[str, str] | None = None,
                **documents: dict[str, Any] | None) -> list[dict[str, str]]:
    """Errors (``field``, ``message``) of labels and of JSON ``documents`` (e.g. params=…) over the limits."""
    errors: list[dict[str, str]] = []
    for key, value in (labels or {}).items():
        if _utf8_len(key) > settings.max_label_key_bytes:
            errors.append({"field": f"labels.{key[:40]}…", "message":
                           f"a label key may be at most {settings.max_label_key_bytes} bytes"})
        elif _utf8_len(value) > settings.max_label_value_bytes:
            errors.append({"field": f"labels.{key}", "message":
                           f"a label value may be at most {settings.max_label_value_bytes} bytes"})
    if errors:
        metrics.REFUSALS.labels(reason="label_size").inc()
    for name, document in documents.items():
        if document and len(orjson.dumps(document)) > settings.max_params_bytes:
            metrics.REFUSALS.labels(reason="params_size").inc()
            errors.append({"field": name, "message": f"may be at most {settings.max_params_bytes} bytes as JSON"})
    return errors


def check_sizes(settings: Settings, *, labels: dict[str, str] | None = None, **documents: dict[str, Any] | None) -> None:
    """Raise Unprocessable listing every field over its size limit."""
    errors = size_errors(settings, labels=labels, **documents)
    if errors:
        raise Unprocessable("too large: " + "; ".join(f"{e['field']} {e['message']}" for e in errors),
                            extra={"errors": errors})
