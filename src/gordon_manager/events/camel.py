"""snake_case → camelCase for NOTIFY payloads re-serialised at the WS edge (the service's one converter)."""

from __future__ import annotations

from gordon_manager.http.casing import camelize, to_camel

__all__ = ["camelize", "to_camel"]
