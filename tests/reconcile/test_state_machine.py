"""A hypothesis state machine of random desired-state changes, with notifications dropped or
duplicated: the fleet always settles with desired = observed, and a second pass makes no runtime call."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gordon_manager.db.connect import create_pool
from gordon_manager.reconcile.policy import Thresholds
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.reconcile.start import make_spec_builder
from gordon_manager.runtimes.process import ProcessRuntime
from tests.conftest import create_database, make_settings, wait_for
from tests.reconcile.conftest import WORKLOAD

TRANSITIONS = {"start": ("stopped", "running"), "pause": ("running", "paused"), "resume": ("paused", "running"),
               "stop": ("running", "stopped"), "stop_paused": ("paused", "stopped")}


class AlwaysLeader:
    is_leader = True


class FleetMachine(RuleBasedStateMachine):
    """Bots whose desired state changes at random; reconcile passes run 0, 1 or 2 times per change."""

    loop: asyncio.AbstractEventLoop
    db = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gm-sm-"))
        self.runtime = ProcessRuntime(state_dir=self.tmp / "state")
        (self.tmp / "logs").mkdir()
        settings_ = make_settings(self.db, self.tmp, bot_command=f"{sys.executable} {WORKLOAD} {self.tmp / 'logs'}")
        self.reconciler = Reconciler(pool=self.pool, runtime=self.runtime, leader=AlwaysLeader(),
                                     spec_builder=make_spec_builder(settings_, "process"),
                                     thresholds=Thresholds(quarantine_failures=10_000), interval=60,
                                     clock=lambda: self.now)
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.bots: dict[int, str] = {}
        self.killed: dict[int, float] = {}  # pid -> create time, of processes killed behind our back

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    @initialize(n=st.integers(min_value=1, max_value=3))
    def create(self, n):
        for _ in range(n):
            bot_id = self.run(self.pool.fetchval(
                "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by)"
                " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'sm') RETURNING id",
                f"sm-{uuid.uuid4().hex[:10]}"))
            self.bots[bot_id] = "stopped"

    @rule(data=st.data(), passes=st.sampled_from([0, 1, 2]))
    def change(self, data, passes):
        bot_id = data.draw(st.sampled_from(sorted(self.bots)))
        legal = sorted(a for a, (before, _) in TRANSITIONS.items() if before == self.bots[bot_id])
        action = data.draw(st.sampled_from(legal))
        _, after = TRANSITIONS[action]
        self.run(self.pool.execute("UPDATE trading.bot_configs SET desired_state = $2, version = version + 1"
                                   " WHERE id = $1", bot_id, after))
        self.bots[bot_id] = after
        self.now += timedelta(seconds=1)
        for _ in range(passes):  # 0 = notification dropped, 2 = duplicated
            self.run(self.reconciler.reconcile())

    @rule(data=st.data())
    @precondition(lambda self: any(s != "stopped" for s in self.bots.values()))
    def outside_kill(self, data):
        """Someone kills a bot behind our back."""
        observed = self.run(self.runtime.observe())
        alive = [o for o in observed.values() if o.running]
        index = data.draw(st.integers(min_value=0, max_value=7))  # never depend on live state for draws
        if alive:
            victim = alive[index % len(alive)]
            pid = int(victim.workload_id.split(":")[1])
            try:
                self.killed[pid] = psutil.Process(pid).create_time()
            except psutil.NoSuchProcess:
                return  # it died on its own meanwhile
            os.kill(pid, signal.SIGKILL)

    @invariant()
    def settles(self):
        pass  # checked in teardown: convergence needs passes, which rules decide

    def teardown(self):
        try:
            for _ in range(10):
                self.now += timedelta(seconds=600)  # let any restart backoff expire
                self._landed()  # real passes are spaced: a kill or an exit has landed before the next
                self.run(self.reconciler.reconcile())
                if self._converged():
                    break
            assert self._converged(), self._describe()
            calls = self.reconciler.runtime_calls
            self._landed()  # anything the last actions set off has landed
            self.run(self.reconciler.reconcile())
            assert self.reconciler.runtime_calls == calls, "a settled fleet needs no runtime call"
        finally:
            for bot_id in self.bots:
                self.run(self.runtime.remove(bot_id))
            self.run(self.pool.execute("UPDATE trading.bot_configs SET deleted_at = now() WHERE id = ANY($1)",
                                       list(self.bots)))

    def _landed(self) -> None:
        """Wait until no process is between states: every pid killed behind our back is dead, and every
        running bot has installed its signal handlers (its "start" line), so a pause or resume signal
        can no longer kill it. What a fixed sleep used to hope for."""

        async def settled() -> bool:
            if not all(_dead(pid, created) for pid, created in self.killed.items()):
                return False
            for observed in (await self.runtime.observe()).values():
                pid = int(observed.workload_id.split(":")[1])
                if observed.running and not self._logged_start(observed.bot_id, pid):
                    return False
            return True

        self.run(wait_for(settled, timeout=30))

    def _logged_start(self, bot_id: int, pid: int) -> bool:
        log = self.tmp / "logs" / f"bot-{bot_id}.log"
        try:
            lines = log.read_text().splitlines()
        except FileNotFoundError:
            return False
        return any(line.startswith(f"{pid} start ") for line in lines)

    def _converged(self) -> bool:
        observed = self.run(self.runtime.observe())
        rows = {r["bot_id"]: r["observed_state"] for r in self.run(self.pool.fetch(
            "SELECT bot_id, observed_state FROM trading.bot_status WHERE bot_id = ANY($1)", list(self.bots)))}
        for bot_id, desired in self.bots.items():
            up = bot_id in observed and observed[bot_id].running
            if desired == "stopped" and (up or rows.get(bot_id) != "stopped"):
                return False
            if desired != "stopped" and (not up or rows.get(bot_id) != desired):
                return False
        return True

    def _describe(self) -> str:
        rows = self.run(self.pool.fetch(
            "SELECT bot_id, observed_state, workload_id, next_retry_at, failure_times, last_error"
            " FROM trading.bot_status WHERE bot_id = ANY($1)", list(self.bots)))
        return f"now={self.now} observed={self.run(self.runtime.observe())} desired={self.bots} status={rows}"


def _dead(pid: int, created: float) -> bool:
    """The process ``pid`` created at ``created`` has exited (a zombie, reaped, or its pid reused)."""
    try:
        process = psutil.Process(pid)
        return process.create_time() != created or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_fleet_always_settles(pg_server_url):
    loop = asyncio.new_event_loop()
    try:
        previous = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # no loop set in this thread (depends on which tests ran before)
        previous = None
    asyncio.set_event_loop(loop)  # asyncpg binds the pool to the current loop
    try:
        db = loop.run_until_complete(create_database(pg_server_url))
        pool = loop.run_until_complete(create_pool(db.admin_url, min_size=1, max_size=4))
        FleetMachine.loop, FleetMachine.db, FleetMachine.pool = loop, db, pool
        runner = FleetMachine.TestCase
        runner.settings = settings(max_examples=10, stateful_step_count=10, deadline=None,
                                   suppress_health_check=list(HealthCheck))
        runner("runTest").runTest()
        loop.run_until_complete(pool.close())
    finally:
        asyncio.set_event_loop(previous)
        loop.close()
