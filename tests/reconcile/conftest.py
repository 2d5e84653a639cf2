"""Fixtures for reconciler tests: a private database and apps with the reconciler on."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from gordon_manager.app import create_app
from tests.conftest import create_database, make_settings

WORKLOAD = Path(__file__).with_name("workload.py")


@pytest.fixture(scope="module")
async def rdb(pg_server_url):
    """A database of this module's own, so bots of other tests are not reconciled here."""
    return await create_database(pg_server_url)


def reconcile_settings(db, data_dir: Path, log_dir: Path, mode: str = "run", **overrides):
    values = dict(reconcile_enabled=True, reconcile_interval_s=0.5,
                  bot_command=f"{sys.executable} {WORKLOAD} {log_dir} {mode}",
                  backoff_base_s=0.3, backoff_max_s=1.0, backoff_reset_s=600, quarantine_failures=3,
                  quarantine_window_s=30)
    values.update(overrides)
    return make_settings(db, data_dir, **values)


@contextlib.asynccontextmanager
async def running_app(settings):
    """An app with lifespan (reconciler running) and a client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            yield app, client


@pytest.fixture
def log_dir(tmp_path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def kill_leftovers(data_dir):
    """Kill every process the test's process runtime recorded (bots outlive managers by design)."""
    yield
    import json

    state = data_dir / "process-runtime"
    for path in state.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        for record in data.get("bots", []):
            pid = record.get("pid") if isinstance(record, dict) else None
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
