"""The shared degraded-state registry that /healthz reports.

Components (the WS hub, the stack prober, the NATS consumer) set and clear reasons here; the
reasons are drawn from a fixed vocabulary so dashboards can alert on them.
"""

from __future__ import annotations

from typing import Any

DEGRADED_REASONS = ("peer_down", "ws_reconnect_storm", "ws_subscriber_overload")


class HealthState:
    """Degraded reasons and named checks, written by components, read by /healthz."""

    def __init__(self) -> None:
        self._reasons: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, dict[str, Any]] = {}

    def set_degraded(self, reason: str, source: str, detail: str = "") -> None:
        """Mark ``reason`` as raised by ``source``."""
        if reason not in DEGRADED_REASONS:
            raise ValueError(f"unknown degraded reason {reason!r}")
        self._reasons.setdefault(reason, {})[source] = detail

    def clear_degraded(self, reason: str, source: str) -> None:
        """Withdraw ``source``'s contribution to ``reason``."""
        sources = self._reasons.get(reason)
        if sources is not None:
            sources.pop(source, None)
            if not sources:
                del self._reasons[reason]

    def set_check(self, name: str, **values: Any) -> None:
        """Publish a named check's latest result."""
        self.checks[name] = values

    @property
    def degraded(self) -> list[str]:
        """Reasons currently raised, in vocabulary order."""
        return [r for r in DEGRADED_REASONS if r in self._reasons]

    def details(self) -> dict[str, dict[str, Any]]:
        """Which sources raised which reason."""
        return {reason: dict(sources) for reason, sources in self._reasons.items()}
