"""Prometheus file-SD writer: one scrape target per running bot, rewritten atomically on change.

Why polling and not LISTEN: one indexed query per second is cheap (a join over running bots),
needs no dedicated connection, and cannot miss a change while a listener reconnects (NOTIFY is
lost during a disconnect; a level-triggered poll is not). Worst-case latency is one poll interval.
``wake()`` still runs a pass at once for any component that wants to push a change.

The file is written only when its content changes: a temp file in the same directory, fsync,
``os.replace`` (atomic on POSIX), then an fsync of the directory, so Prometheus never reads a
half-written file and a crash leaves either the old or the new set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
TARGET_HOST = "127.0.0.1"
FILE_MODE = 0o644  # Prometheus usually runs as another user

RUNNING_TARGETS = """
SELECT c.id AS bot_id, c.name, c.strategy, c.symbol, c.mode, c.version AS config_version, s.metrics_port,
       s.metrics_host
FROM trading.bot_status s
JOIN trading.bot_configs c ON c.id = s.bot_id
WHERE s.observed_state = 'running' AND s.metrics_port IS NOT NULL AND c.deleted_at IS NULL
ORDER BY c.id
"""


def render_targets(rows: Iterable[Mapping[str, Any]], *, host: str = TARGET_HOST) -> bytes:
    """The file-SD JSON for ``rows`` (one target group per bot, deterministic bytes).

    A container's target is its own address on the bots' network (``metrics_host``, recorded by the
    reconciler); a local process (no address recorded) is scraped on ``host``.
    """
    groups = [{
        "targets": [f"{_host(row) or host}:{row['metrics_port']}"],
        "labels": {
            "bot_id": str(row["bot_id"]),
            "name": row["name"],
            "strategy": row["strategy"],
            "symbol": row["symbol"],
            "mode": row["mode"],
            "config_version": str(row["config_version"]),
        },
    } for row in rows]
    return orjson.dumps(groups, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _host(row: Mapping[str, Any]) -> str | None:
    try:
        return row["metrics_host"]
    except KeyError:
        return None


def write_atomic(path: Path, data: bytes, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same dir, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileSdWriter(LoopService):
    """Keeps ``path`` equal to the set of running bots' /metrics targets."""

    name = "file_sd"

    def __init__(self, *, pool: asyncpg.Pool, path: Path, interval: float = POLL_INTERVAL_S,
                 host: str = TARGET_HOST) -> None:
        super().__init__(interval=interval)
        self.pool = pool
        self.path = Path(path)
        self.host = host
        self._written: bytes | None = None

    async def setup(self) -> None:
        """Remember what is already on disk so a restart does not rewrite an unchanged file."""
        try:
            self._written = await asyncio.to_thread(self.path.read_bytes)
        except OSError:
            self._written = None

    async def run_once(self) -> None:
        """Query the running bots; rewrite the file only when the target set changed."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(RUNNING_TARGETS)
        content = render_targets(rows, host=self.host)
        if content == self._written:
            return
        started = time.perf_counter()
        await asyncio.to_thread(write_atomic, self.path, content)
        metrics.FILE_SD_WRITE_DURATION.observe(time.perf_counter() - started)
        metrics.FILE_SD_UPDATES.inc()
        self._written = content
        logger.info("file-SD targets written", extra={"path": str(self.path), "targets": len(rows)})
