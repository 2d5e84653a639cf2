"""Fixtures of the deploy tests: a private database, klines, bots, and apps with reconciler + controller on."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from pathlib import Path

import psutil
import pytest

from tests.botrunner.conftest import insert_klines, synth
from tests.conftest import TEST_OPERATOR_TOKEN, create_database, make_settings

HEADERS = {"X-Operator-Token": TEST_OPERATOR_TOKEN}


@pytest.fixture(scope="module")
async def ddb(pg_server_url):
    """A database of this module's own: bots of other tests are not reconciled here."""
    return await create_database(pg_server_url)


@pytest.fixture
async def admin(ddb):
    """A superuser connection (with the jsonb codec): plays the bots and the reconciler in row tests."""
    from gordon_manager.db.connect import connect

    conn = await connect(ddb.admin_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def pool(ddb):
    """A pool logged in as gordon_manager (what the services use)."""
    from gordon_manager.db.connect import create_pool

    p = await create_pool(ddb.manager_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


def new_symbol() -> str:
    return "D" + uuid.uuid4().hex[:8].upper()


async def klines(db, n: int, *, seed: int = 11) -> str:
    """A fresh symbol with ``n`` synthetic 1m bars (all closed: they are in 2024)."""
    sym = new_symbol()
    await insert_klines(db.admin_url, synth(n, seed=seed), symbol=sym)
    return sym


def deploy_settings(db, data_dir: Path, **overrides):
    """Reconciler (process runtime, real `gordon-manager bot`) and deploy controller on, short timers."""
    values = dict(reconcile_enabled=True, reconcile_interval_s=0.5, backoff_base_s=0.3, backoff_max_s=1.0,
                  quarantine_failures=3, quarantine_window_s=30, deploy_lease_ttl_s=2.0,
                  deploy_compare_window=20, deploy_match_threshold=1.0)
    values.update(overrides)
    return make_settings(db, data_dir, **values)


def kill_recorded_bots(data_dir: Path) -> None:
    """Kill every process a process runtime recorded under ``data_dir`` (bots outlive managers by design)."""
    for path in (data_dir / "process-runtime").glob("*.json"):
        try:
            records = json.loads(path.read_text()).get("bots", [])
        except ValueError:
            continue
        for record in records:
            if not isinstance(record, dict) or not record.get("pid"):
                continue
            try:  # only the very process that was recorded (a pid may have been recycled since)
                if abs(psutil.Process(record["pid"]).create_time() - record.get("create_time", 0)) > 0.05:
                    continue
            except psutil.Error:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pid"], signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path):
    path = tmp_path / "data"
    path.mkdir()
    yield path
    kill_recorded_bots(path)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs root, Debian dockerd and haproxy (ci/install-system-deps.sh)")
