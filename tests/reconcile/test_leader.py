"""Only the advisory-lock holder reconciles; a second replica takes over when the first dies or freezes."""

from __future__ import annotations

import asyncio
import time

import pytest

from gordon_manager.reconcile.leader import LeaderElector
from tests.conftest import wait_for
from tests.reconcile.conftest import reconcile_settings, running_app
from tests.reconcile.test_reconciler_process import HEADERS, create_bot, running_pid

pytestmark = pytest.mark.usefixtures("kill_leftovers")


async def test_second_manager_serves_but_does_not_act_then_takes_over(rdb, data_dir, log_dir, tmp_path):
    settings_a = reconcile_settings(rdb, data_dir, log_dir)
    settings_b = reconcile_settings(rdb, data_dir, log_dir)  # same state dir: a replica on the same host
    async with running_app(settings_a) as (app_a, client_a):
        rec_a = app_a.state.ctx.services.reconciler
        await wait_for(lambda: rec_a.leader.is_leader)
        async with running_app(settings_b) as (app_b, client_b):
            rec_b = app_b.state.ctx.services.reconciler
            # B has tried for the lock twice (one keepalive apart) and found it held.
            await wait_for(lambda: rec_b.leader.iterations >= 2, timeout=15)
            assert rec_a.leader.is_leader and not rec_b.leader.is_leader
            bot_id = await create_bot(client_b, desiredState="running")  # B serves HTTP
            pid = await running_pid(client_b, bot_id)
            assert rec_b.runtime_calls == 0 and rec_a.runtime_calls >= 1, "only the leader acts"
            # A dies (its lifespan ends, its lock connection closes): B takes over
            leaving = time.monotonic()
            await _shutdown(app_a)
            await wait_for(lambda: rec_b.leader.is_leader, timeout=15)
            takeover_s = time.monotonic() - leaving
            assert takeover_s < 15
            await client_b.post(f"/bots/{bot_id}/stop", headers=HEADERS)
            await wait_for(lambda: rec_b.runtime_calls >= 1)
            from tests.reconcile.test_reconciler_process import alive

            await wait_for(lambda: not alive(pid))


async def _shutdown(app) -> None:
    ctx = app.state.ctx
    await ctx.supervisor.stop()


async def test_frozen_leader_is_replaced_within_15s_and_never_two_leaders(rdb):
    a = LeaderElector(url=rdb.manager_url, keepalive_s=0.2, lease_s=1.0, takeover_s=3.0)
    b = LeaderElector(url=rdb.manager_url, keepalive_s=0.2, lease_s=1.0, takeover_s=3.0)
    task_a = asyncio.create_task(a.run())
    await wait_for(lambda: a.is_leader)
    task_b = asyncio.create_task(b.run())
    both = []

    async def watch():
        while True:  # a sampler for the whole test, not a wait
            both.append(a.is_leader and b.is_leader)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await wait_for(lambda: b.iterations >= 3)  # B tried for the lock three times and found it held
        assert a.is_leader and not b.is_leader
        # Freeze A: its loop stops pinging but its session (and lock) stay open, as with a hung process.
        task_a.cancel()
        frozen_at = time.monotonic()
        await wait_for(lambda: b.is_leader, timeout=15)
        took = time.monotonic() - frozen_at
        assert took < 15, took
        assert not a.is_leader, "the frozen leader's lease lapsed before B took over"
        assert not any(both), "two leaders at once"
        # A wakes up: it must notice it lost the lock instead of acting
        tries = a.iterations
        task_a = asyncio.create_task(a.run())
        await wait_for(lambda: a.iterations >= tries + 3)  # A tried three times since it woke up
        assert not a.is_leader and b.is_leader
        assert not any(both)
    finally:
        watcher.cancel()
        for loop, task in ((a, task_a), (b, task_b)):
            loop.stop()
            task.cancel()
        await asyncio.gather(task_a, task_b, watcher, return_exceptions=True)
        await a.teardown()
        await b.teardown()


async def test_leader_survives_a_database_outage_by_stepping_down(rdb):
    bad = LeaderElector(url="postgresql://gordon_manager@127.0.0.1:1/x", keepalive_s=0.1, lease_s=0.5,
                        connect_timeout_s=0.5)
    await bad.run_once()
    assert not bad.is_leader
