"""Kill the manager at every step of a deploy, restart it, and check the deploy recovered consistently.

A real `gordon-manager serve` (process runtime, real bot processes) runs with
GORDON_MANAGER_FAILPOINTS=<step> and dies there (exit 70, as with kill -9: open transactions roll
back, leases stay behind). A second one starts without the failpoint on the same database and data
dir (so it adopts the running bots). Throughout, the live bot id never has two processes, and never
none for longer than one reconcile interval; the candidate is never anything but a shadow bot.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from gordon_manager.db.connect import connect
from gordon_manager.deploys.faults import EXIT_CODE, STEPS
from tests.conftest import TEST_OPERATOR_TOKEN, create_database, wait_for
from tests.deploys.conftest import HEADERS, kill_recorded_bots, klines
from tests.deploys.helpers import live_bot
from tests.deploys.sampler import BotSampler, bot_processes

RECONCILE_S = 0.5
# Long enough that a manager starved of CPU by a loaded machine still renews its lease (with 2 s, a
# full suite under load once saw the first manager lose its lease before reaching the failpoint, so
# it never died); each recovery waits for the dead manager's lease to lapse, so not much longer.
LEASE_TTL_S = 6
OUTCOMES = {"deploy.after_create": ("promoted", None), "controller.after_shadowing": ("aborted", "lease lost"),
            "controller.after_compare": ("aborted", "lease lost"), "swap.after_swapping": ("aborted", "lease lost"),
            "swap.before_commit": ("aborted", "lease lost"), "swap.after_commit": ("promoted", None)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class World:
    """One database, one data dir and one live bot shared by every step (bots outlive managers)."""

    db: object
    data_dir: Path
    live: int


class Manager:
    """`gordon-manager serve` as a subprocess."""

    def __init__(self, world: World, *, failpoint: str | None = None) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GORDON_", "DOCKER_SOCKET"))}
        env.update({"GORDON_DATABASE_URL": world.db.manager_url, "GORDON_MANAGER_DATA_DIR": str(world.data_dir),
                    "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{self.port}",
                    "GORDON_MANAGER_OPERATOR_TOKEN": TEST_OPERATOR_TOKEN,
                    "GORDON_MANAGER_RECONCILE_INTERVAL_S": str(RECONCILE_S), "GORDON_MANAGER_BACKOFF_BASE_S": "0.3",
                    "GORDON_MANAGER_DEPLOY_LEASE_TTL_S": str(LEASE_TTL_S), "GORDON_MANAGER_LOG_LEVEL": "WARNING",
                    "GORDON_MANAGER_FAILPOINTS": failpoint or ""})
        self.log = world.data_dir / f"manager-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "gordon_manager.cli", "serve"], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"manager exited early:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("manager did not become healthy")

    async def wait_exit(self, timeout: float = 60) -> int:
        async def exited():
            return self.proc.poll() is not None
        try:
            await wait_for(exited, timeout=timeout, interval=0.05)
        except AssertionError as exc:  # say where the manager stood instead of only "not met"
            raise AssertionError(f"manager still running after {timeout}s:\n{self.log.read_text()[-3000:]}") from exc
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
async def world(pg_server_url, tmp_path_factory):
    db = await create_database(pg_server_url)
    data_dir = tmp_path_factory.mktemp("faults")
    symbol = await klines(db, 400, seed=3)
    admin = await connect(db.admin_url)
    try:
        live = await live_bot(admin, symbol=symbol, observed="pending", labels={"replay.speed": "20"})
    finally:
        await admin.close()
    yield World(db=db, data_dir=data_dir, live=live)
    kill_recorded_bots(data_dir)


async def q(world: World, query: str, *args):
    conn = await asyncpg.connect(world.db.admin_url)
    try:
        return await conn.fetchrow(query, *args)
    finally:
        await conn.close()


async def live_converged(world: World):
    """The live bot runs its current spec (workload and run); returns the spec version."""
    row = await q(world, "SELECT c.spec_version, s.observed_state, s.observed_version, "
                         " (SELECT id FROM trading.runs r WHERE r.bot_id = c.id AND r.status = 'running'"
                         "   AND (r.config->>'specVersion')::int = c.spec_version LIMIT 1) AS run"
                         " FROM trading.bot_configs c JOIN trading.bot_status s ON s.bot_id = c.id WHERE c.id = $1",
                  world.live)
    procs = bot_processes(world.db.name).get(world.live, [])
    ok = (row["observed_state"] == "running" and row["observed_version"] == row["spec_version"] and row["run"]
          and [v for _pid, v in procs] == [row["spec_version"]])
    return row["spec_version"] if ok else None


@pytest.mark.parametrize("step", STEPS)
async def test_a_manager_killed_at_each_step_recovers_consistently(world, step):
    outcome, reason = OUTCOMES[step]
    first = Manager(world, failpoint=step)
    sampler = BotSampler(world.live, world.db.name)
    second = None
    try:
        first.wait_healthy()
        # a step that failed before must not leave its deploy in the way of this one
        httpx.post(f"{first.url}/bots/{world.live}/deploy/abort", headers=HEADERS, timeout=10)
        spec_before = await wait_for(lambda: live_converged(world), timeout=60, interval=0.1)
        sampler.start()
        try:
            httpx.post(f"{first.url}/bots/{world.live}/deploy/promote", headers=HEADERS,
                       json={"compareWindow": 20, "matchThreshold": 1.0, "leaseTtlS": LEASE_TTL_S}, timeout=10)
        except httpx.HTTPError:
            assert step == "deploy.after_create"  # it died answering
        assert await first.wait_exit() == EXIT_CODE, first.log.read_text()[-3000:]

        # while no manager runs: one deploy, the live bot unchanged unless the swap committed
        deploy = await q(world, "SELECT * FROM trading.bot_deploys WHERE bot_id = $1 ORDER BY id DESC LIMIT 1",
                         world.live)
        spec_now = (await q(world, "SELECT spec_version FROM trading.bot_configs WHERE id = $1",
                            world.live))["spec_version"]
        if step == "swap.after_commit":
            assert deploy["state"] == "promoted" and spec_now == spec_before + 1
        else:
            assert deploy["state"] in ("pending", "shadowing", "comparing", "swapping") and spec_now == spec_before
        if step == "swap.before_commit":
            assert deploy["state"] == "swapping"  # the swap transaction rolled back as a whole
        if step == "deploy.after_create" and deploy["lease_owner"] is not None:
            # The dead manager's controller ticked between the commit and the failpoint and claimed the
            # new deploy: its lease must lapse, and a lapsed lease of another controller aborts.
            outcome, reason = "aborted", "lease lost"

        second = Manager(world)
        second.wait_healthy()

        async def finished():
            row = await q(world, "SELECT state, reason FROM trading.bot_deploys WHERE id = $1", deploy["id"])
            return row if row["state"] in ("promoted", "aborted", "failed") else None

        try:
            done = await wait_for(finished, timeout=60, interval=0.1)
        except AssertionError:
            raise AssertionError(f"{step}: deploy did not finish: {await _dump(world, deploy['id'])}") from None
        assert (done["state"], done["reason"] if reason else None) == (outcome, reason), dict(done)
        # converged: the candidate is removed, the live bot runs exactly one process of its current spec
        await wait_for(lambda: _candidate_gone(world, deploy["candidate_bot_id"]), timeout=60, interval=0.1)
        spec_after = await wait_for(lambda: live_converged(world), timeout=60, interval=0.1)
        assert spec_after == spec_before + (1 if outcome == "promoted" else 0)
        cand = await q(world, "SELECT mode FROM trading.bot_configs WHERE id = $1", deploy["candidate_bot_id"])
        assert cand["mode"] == "shadow"
    finally:
        sampler.stop()
        for manager in (first, second):
            if manager is not None:
                manager.stop()
    assert sampler.max_concurrent() == 1, f"{step}: two processes for live bot {world.live}"
    assert sampler.longest_gap() <= RECONCILE_S, f"{step}: no live process for {sampler.longest_gap():.3f}s"


async def _candidate_gone(world: World, candidate: int) -> bool:
    row = await q(world, "SELECT deleted_at FROM trading.bot_configs WHERE id = $1", candidate)
    return row["deleted_at"] is not None and candidate not in bot_processes(world.db.name)


async def _dump(world: World, deploy_id: int) -> str:
    """What the deploy, both bots and their runs look like (for a failure message)."""
    conn = await asyncpg.connect(world.db.admin_url)
    try:
        deploy = dict(await conn.fetchrow("SELECT * FROM trading.bot_deploys WHERE id = $1", deploy_id))
        bots = [dict(r) for r in await conn.fetch(
            "SELECT c.id, c.mode, c.desired_state, c.spec_version, s.observed_state, s.observed_version, s.last_error"
            " FROM trading.bot_configs c JOIN trading.bot_status s ON s.bot_id = c.id WHERE c.id = ANY($1)",
            [deploy["bot_id"], deploy["candidate_bot_id"]])]
        runs = [dict(r) for r in await conn.fetch(
            "SELECT r.id, r.bot_id, r.kind, r.status, r.range_start, (SELECT count(*) FROM trading.equity_points e"
            " WHERE e.run_id = r.id) AS points FROM trading.runs r WHERE r.bot_id = ANY($1) ORDER BY r.id",
            [deploy["bot_id"], deploy["candidate_bot_id"]])]
    finally:
        await conn.close()
    return f"deploy={deploy}\nbots={bots}\nruns={runs}\nprocesses={bot_processes(world.db.name)}"
