"""The labels a bot runner reads (``replay.*``), checked once, by the API and by the bot alike.

* ``replay.speed``: bars per second of a replay of stored bars (``0`` = as fast as possible);
* ``replay.from``: RFC 3339 time (with an offset) of the first replayed bar (default: the oldest).

A replay is a demo of a ``paper`` (or ``shadow``) bot; a ``live`` bot trades new bars only.
"""

from __future__ import annotations

import math
from datetime import datetime

from gordon_manager.errors import ConfigurationError

REPLAY_SPEED = "replay.speed"
REPLAY_FROM = "replay.from"
KNOWN = (REPLAY_SPEED, REPLAY_FROM)


def label_errors(labels: dict[str, str], *, mode: str) -> list[dict[str, str]]:
    """Field errors (``{field, message}``) of the labels the runner reads; empty when they are fine."""
    errors = []
    for key in labels:
        if key.startswith("replay.") and key not in KNOWN:
            errors.append({"field": f"labels.{key}", "message": f"unknown replay label (known: {', '.join(KNOWN)})"})
    speed = labels.get(REPLAY_SPEED)
    if speed is not None:
        try:
            value = float(speed)
            ok = math.isfinite(value) and value >= 0
        except ValueError:
            ok = False
        if not ok:
            errors.append({"field": f"labels.{REPLAY_SPEED}",
                           "message": "must be a number of bars per second >= 0 (0 = as fast as possible)"})
    start = labels.get(REPLAY_FROM)
    if start is not None:
        try:
            ok = datetime.fromisoformat(start).tzinfo is not None
        except ValueError:
            ok = False
        if not ok:
            errors.append({"field": f"labels.{REPLAY_FROM}",
                           "message": "must be an RFC 3339 time with an offset, e.g. 2024-01-01T00:00:00Z"})
        elif speed is None:
            errors.append({"field": f"labels.{REPLAY_FROM}", "message": f"needs {REPLAY_SPEED}"})
    if mode == "live" and (speed is not None or start is not None):
        errors.append({"field": "labels", "message": "a live bot trades new bars only: replay.* is for paper bots"})
    return errors


def replay_settings(labels: dict[str, str]) -> tuple[float | None, datetime | None]:
    """(speed, from) of a replaying bot, (None, None) for a bot that follows new bars."""
    errors = label_errors(labels, mode="paper")
    if errors:
        raise ConfigurationError("; ".join(f"{e['field']}: {e['message']}" for e in errors))
    speed = labels.get(REPLAY_SPEED)
    start = labels.get(REPLAY_FROM)
    return (float(speed) if speed is not None else None,
            datetime.fromisoformat(start) if start is not None else None)
