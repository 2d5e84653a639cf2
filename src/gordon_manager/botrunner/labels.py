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
# Read by the manager, not the runner: a bot container's limits (docker/swarm), else the settings' defaults.
RESOURCES_CPU = "resources.cpu"
RESOURCES_MEMORY_MB = "resources.memory_mb"
RESOURCES = (RESOURCES_CPU, RESOURCES_MEMORY_MB)


def resource_limits(labels: dict[str, str] | None, *, cpu: float, memory_mb: int) -> tuple[float, int]:
    """(cpus, memory MiB) of a bot container: its ``resources.*`` labels, else the given defaults."""
    labels = labels or {}
    try:
        cpu = float(labels.get(RESOURCES_CPU, cpu))
        memory_mb = int(labels.get(RESOURCES_MEMORY_MB, memory_mb))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"resources labels: {exc}") from exc
    return cpu, memory_mb


def label_errors(labels: dict[str, str], *, mode: str) -> list[dict[str, str]]:
    """Field errors (``{field, message}``) of the labels the runner reads; empty when they are fine."""
    errors = []
    for key in labels:
        if key.startswith("replay.") and key not in KNOWN:
            errors.append({"field": f"labels.{key}", "message": f"unknown replay label (known: {', '.join(KNOWN)})"})
    for key in labels:
        if key.startswith("resources.") and key not in RESOURCES:
            errors.append({"field": f"labels.{key}", "message": f"unknown resources label (known: {', '.join(RESOURCES)})"})
    cpu = labels.get(RESOURCES_CPU)
    if cpu is not None:
        try:
            ok = math.isfinite(float(cpu)) and 0 < float(cpu) <= 256
        except ValueError:
            ok = False
        if not ok:
            errors.append({"field": f"labels.{RESOURCES_CPU}", "message": "must be a number of CPUs in (0, 256]"})
    memory = labels.get(RESOURCES_MEMORY_MB)
    if memory is not None and not (memory.isdigit() and 6 <= int(memory) <= 1024 * 1024):
        errors.append({"field": f"labels.{RESOURCES_MEMORY_MB}", "message": "must be an integer of MiB in [6, 1048576]"})
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
