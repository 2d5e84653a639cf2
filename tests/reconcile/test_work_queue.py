"""The reconciler's controller habits, with the real process runtime and real PostgreSQL:

* a slow runtime call delays only its own bot (a per-bot worker; the pass returns within its budget,
  later passes skip the busy bot and converge the others);
* status writes are generation-checked: a row that moved on while the reconciler acted (the
  operator cleared a quarantine) is not overwritten, the bot is requeued and decided again.

The runtime is the real ProcessRuntime; ``Gated`` only holds chosen calls until the test opens a gate
(the slow Docker stop it stands for is a real call too, just slower).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

import pytest

from gordon_manager.db.connect import create_pool
from gordon_manager.reconcile.policy import Thresholds
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.reconcile.start import make_spec_builder
from gordon_manager.runtimes.process import ProcessRuntime
from tests.conftest import make_settings, wait_for
from tests.reconcile.conftest import WORKLOAD
from tests.reconcile.test_reconciler_errors import Leader, new_bot


class Gated:
    """The real runtime; a call for a bot in ``gates`` waits until its gate is set."""

    def __init__(self, runtime: ProcessRuntime) -> None:
        self.runtime = runtime
        self.kind = runtime.kind
        self.gates: dict[tuple[str, int], asyncio.Event] = {}
        self.entered: dict[tuple[str, int], asyncio.Event] = {}
        self.calls: list[tuple[str, int]] = []

    def gate(self, call: str, bot_id: int) -> asyncio.Event:
        self.entered[(call, bot_id)] = asyncio.Event()
        gate = self.gates[(call, bot_id)] = asyncio.Event()
        return gate

    async def _through(self, call: str, bot_id: int) -> None:
        self.calls.append((call, bot_id))
        gate = self.gates.get((call, bot_id))
        if gate is not None:
            self.entered[(call, bot_id)].set()
            await gate.wait()

    async def observe(self):
        await self._through("observe", 0)
        return await self.runtime.observe()

    async def start(self, spec):
        await self._through("start", spec.bot_id)
        return await self.runtime.start(spec)

    async def stop(self, bot_id: int) -> None:
        await self._through("stop", bot_id)
        await self.runtime.stop(bot_id)

    async def remove(self, bot_id: int) -> None:
        await self._through("remove", bot_id)
        await self.runtime.remove(bot_id)

    async def signal(self, bot_id: int, sig: str) -> None:
        await self.runtime.signal(bot_id, sig)


@pytest.fixture
async def harness(rdb, data_dir, log_dir):
    pool = await create_pool(rdb.admin_url, min_size=1, max_size=4)
    real = ProcessRuntime(state_dir=data_dir / "state")
    runtime = Gated(real)
    settings = make_settings(rdb, data_dir, bot_command=f"{sys.executable} {WORKLOAD} {log_dir}")
    reconciler = Reconciler(pool=pool, runtime=runtime, leader=Leader(),
                            spec_builder=make_spec_builder(settings, "process"),
                            thresholds=Thresholds(quarantine_failures=2), interval=60,
                            clock=lambda: datetime.now(UTC), pass_budget_s=2.0)
    yield reconciler, runtime, pool
    for gate in runtime.gates.values():
        gate.set()
    await reconciler.drain()
    for bot_id in list(await real.observe()):
        await real.remove(bot_id)
    await pool.close()


async def state(pool, bot_id: int) -> str | None:
    return await pool.fetchval("SELECT observed_state FROM trading.bot_status WHERE bot_id = $1", bot_id)


async def test_a_slow_runtime_call_delays_only_its_own_bot(harness):
    reconciler, runtime, pool = harness
    slow, other = await new_bot(pool), await new_bot(pool)
    await reconciler.reconcile()
    await reconciler.drain()
    assert await state(pool, slow) == await state(pool, other) == "running"

    # the slow bot's stop hangs (a container that takes its time); the other bot's stop goes through
    gate = runtime.gate("stop", slow)
    await pool.execute("UPDATE trading.bot_configs SET desired_state = 'stopped' WHERE id = ANY($1::bigint[])",
                       [slow, other])
    loop = asyncio.get_running_loop()
    began = loop.time()
    await reconciler.reconcile()  # without the per-bot workers this pass would wait for the gate forever
    assert loop.time() - began < reconciler.pass_budget_s + 5
    assert runtime.entered[("stop", slow)].is_set() and slow in reconciler._workers
    await wait_for(lambda: _is(pool, other, "stopped"), timeout=20)
    assert await state(pool, slow) == "running", "nothing recorded for the busy bot yet"

    # later passes skip the busy bot and still converge the rest
    third = await new_bot(pool)
    await reconciler.reconcile()
    await wait_for(lambda: _is(pool, third, "running"), timeout=20)
    assert slow in reconciler._workers and await state(pool, slow) == "running"

    gate.set()  # the slow call returns: its worker records its own outcome
    await reconciler.drain()
    assert await state(pool, slow) == "stopped"
    assert not (await runtime.observe())[slow].running


async def _is(pool, bot_id: int, expected: str) -> bool:
    return await state(pool, bot_id) == expected


async def test_a_status_row_that_moved_on_is_not_overwritten_and_the_bot_is_requeued(harness):
    reconciler, runtime, pool = harness
    bot_id = await new_bot(pool)
    await reconciler.reconcile()
    await reconciler.drain()
    assert await state(pool, bot_id) == "running"
    generation = await pool.fetchval("SELECT generation FROM trading.bot_status WHERE bot_id = $1", bot_id)

    # the reconciler stops the bot (its desired state changed); while its stop is in flight the
    # operator's clear-quarantine writes the row (a generation later)
    gate = runtime.gate("stop", bot_id)
    await pool.execute("UPDATE trading.bot_configs SET desired_state = 'stopped' WHERE id = $1", bot_id)
    await reconciler.reconcile()
    await runtime.entered[("stop", bot_id)].wait()
    await pool.execute("UPDATE trading.bot_status SET last_error = 'operator was here', generation = generation + 1"
                       " WHERE bot_id = $1", bot_id)
    requeues = reconciler._conflicts.get(bot_id, 0)
    gate.set()
    await reconciler.drain()

    row = await pool.fetchrow("SELECT observed_state, last_error, generation FROM trading.bot_status WHERE bot_id = $1",
                              bot_id)
    assert row["last_error"] == "operator was here", "the stale write did not overwrite the operator's"
    assert row["observed_state"] == "running" and row["generation"] == generation + 1
    assert reconciler._conflicts[bot_id] == requeues + 1 and reconciler._requeue is not None
    stopped_events = await pool.fetchval(
        "SELECT count(*) FROM trading.bot_events WHERE bot_id = $1 AND kind = 'stopped'", bot_id)

    # the requeue wakes a pass that decides from the row as it is now, and records it
    await wait_for(lambda: reconciler._wake.is_set(), timeout=5)
    await reconciler.reconcile()
    row = await pool.fetchrow("SELECT observed_state, last_error, generation FROM trading.bot_status WHERE bot_id = $1",
                              bot_id)
    assert row["observed_state"] == "stopped" and row["last_error"] == "operator was here"
    assert row["generation"] == generation + 2
    assert bot_id not in reconciler._conflicts, "a write that went through resets the requeue delay"
    assert await pool.fetchval("SELECT count(*) FROM trading.bot_events WHERE bot_id = $1 AND kind = 'stopped'",
                               bot_id) == stopped_events


async def test_clear_quarantine_bumps_the_generation(harness):
    reconciler, runtime, pool = harness
    from gordon_manager.bots import repo as bots_repo

    bot_id = await new_bot(pool, desired="stopped")
    await reconciler.reconcile()
    await reconciler.drain()
    before = await pool.fetchval("SELECT generation FROM trading.bot_status WHERE bot_id = $1", bot_id)
    async with pool.acquire() as conn:
        await bots_repo.clear_quarantine(conn, bot_id=bot_id)
    assert await pool.fetchval("SELECT generation FROM trading.bot_status WHERE bot_id = $1", bot_id) == before + 1


async def test_a_row_read_before_its_worker_finished_is_not_acted_on(harness):
    reconciler, runtime, pool = harness
    bot_id = await new_bot(pool)
    start_gate = runtime.gate("start", bot_id)
    first = asyncio.ensure_future(reconciler.reconcile())
    await runtime.entered[("start", bot_id)].wait()  # the pass's worker is starting the bot

    # the next pass reads the fleet (status: pending), then its observe waits while the worker finishes
    observe_gate = runtime.gate("observe", 0)
    second = asyncio.ensure_future(reconciler.reconcile())
    await runtime.entered[("observe", 0)].wait()
    start_gate.set()
    await reconciler.drain()
    await first
    observe_gate.set()
    await second
    assert runtime.calls.count(("start", bot_id)) == 1, "the stale row was not started a second time"
    assert await state(pool, bot_id) == "running"
    assert bot_id not in reconciler._conflicts, "no decision (and no write) was made from the stale row"
    assert reconciler._requeue is not None  # it is decided again, from the row as it is now
