"""Reconciler error paths with the real process runtime: a transient runtime failure backs off
without counting towards quarantine, orphan workloads are removed, and a non-leader never acts."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gordon_manager.db.connect import create_pool
from gordon_manager.reconcile.policy import Thresholds
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.reconcile.start import make_spec_builder
from gordon_manager.runtimes.base import WorkloadSpec
from gordon_manager.runtimes.process import ProcessRuntime
from tests.conftest import make_settings
from tests.reconcile.conftest import WORKLOAD


class Leader:
    def __init__(self, leading: bool = True) -> None:
        self.is_leader = leading


@pytest.fixture
async def harness(rdb, data_dir, log_dir):
    pool = await create_pool(rdb.admin_url, min_size=1, max_size=3)
    runtime = ProcessRuntime(state_dir=data_dir / "state")
    settings = make_settings(rdb, data_dir, bot_command=f"{sys.executable} {WORKLOAD} {log_dir}")
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    reconciler = Reconciler(pool=pool, runtime=runtime, leader=Leader(), spec_builder=make_spec_builder(settings, "process"),
                            thresholds=Thresholds(backoff_base_s=10, quarantine_failures=2), interval=60,
                            clock=lambda: now[0])
    yield reconciler, runtime, pool, now, data_dir
    for bot_id in list(await runtime.observe()):
        await runtime.remove(bot_id)
    await pool.close()


async def new_bot(pool, desired: str = "running") -> int:
    return await pool.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, desired_state, created_by)"
        " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', $2, 'test') RETURNING id",
        f"e-{uuid.uuid4().hex[:8]}", desired)


async def status(pool, bot_id: int):
    return await pool.fetchrow("SELECT * FROM trading.bot_status WHERE bot_id = $1", bot_id)


async def test_transient_start_failure_backs_off_and_never_quarantines(harness):
    reconciler, runtime, pool, now, data_dir = harness
    bot_id = await new_bot(pool)
    blocker = data_dir / "state" / "processes.tmp"
    blocker.mkdir(parents=True)  # the runtime cannot write its state file: a transient failure
    try:
        for _ in range(3):
            actions = await reconciler.reconcile()
            assert not actions
            st = await status(pool, bot_id)
            assert st["observed_state"] == "backoff" and "start failed" in st["last_error"]
            assert not st["quarantined"] and st["failure_times"] == []
            assert st["next_retry_at"] == now[0] + timedelta(seconds=10)
            assert not (await reconciler.reconcile()), "waits out the backoff"
            now[0] += timedelta(seconds=11)
    finally:
        blocker.rmdir()
    actions = await reconciler.reconcile()
    assert actions["start"] == 1
    assert (await status(pool, bot_id))["observed_state"] == "running"
    await pool.execute("UPDATE trading.bot_configs SET desired_state = 'stopped' WHERE id = $1", bot_id)
    assert (await reconciler.reconcile())["stop"] == 1


async def test_orphan_workloads_are_removed(harness):
    reconciler, runtime, pool, now, data_dir = harness
    orphan = 9_000_000 + int(uuid.uuid4().int % 1000)
    await runtime.start(WorkloadSpec(bot_id=orphan, config_version=1, name=f"orphan-{orphan}", image="x",
                                     command=(sys.executable, "-c", "import time; time.sleep(600)")))
    assert orphan in await runtime.observe()
    actions = await reconciler.reconcile()
    assert actions["remove_orphan"] == 1
    assert orphan not in await runtime.observe()


async def test_a_replica_that_is_not_leader_never_acts(harness):
    reconciler, runtime, pool, now, data_dir = harness
    bot_id = await new_bot(pool)
    reconciler.leader = Leader(False)
    await reconciler.run_once()
    assert reconciler.runtime_calls == 0 and await runtime.observe() == {}
    assert (await status(pool, bot_id)) is None
    reconciler.leader = Leader(True)
    await reconciler.run_once()
    assert reconciler.runtime_calls == 1 and (await status(pool, bot_id))["observed_state"] == "running"
    await pool.execute("UPDATE trading.bot_configs SET deleted_at = now() WHERE id = $1", bot_id)
