"""The reconciler end to end with the process runtime: start, kill → restart, pause, stop, delete,
crash-loop → quarantine, manager restart → adoption, leader election."""

from __future__ import annotations

import os
import signal
import time
import uuid

import asyncpg
import pytest

from gordon_manager.observability import metrics
from tests.conftest import TEST_OPERATOR_TOKEN, wait_for
from tests.reconcile.conftest import reconcile_settings, running_app

HEADERS = {"X-Operator-Token": TEST_OPERATOR_TOKEN}
pytestmark = pytest.mark.usefixtures("kill_leftovers")


async def create_bot(client, **overrides) -> int:
    body = {"name": f"r-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"fast": 5, "slow": 20}}
    body.update(overrides)
    response = await client.post("/bots", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def status(client, bot_id: int) -> dict:
    return (await client.get(f"/bots/{bot_id}")).json()["status"]


def pid_of(st: dict) -> int:
    return int(st["workloadId"].split(":")[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def running_pid(client, bot_id: int, *, other_than: int | None = None, timeout: float = 10) -> int:
    async def check():
        st = await status(client, bot_id)
        if st and st["observedState"] == "running" and st["workloadId"]:
            pid = pid_of(st)
            if pid != other_than and alive(pid):
                return pid
        return None

    return await wait_for(check, timeout=timeout)


async def test_start_kill_restart_pause_resume_stop_delete(rdb, data_dir, log_dir):
    async with running_app(reconcile_settings(rdb, data_dir, log_dir)) as (app, client):
        bot_id = await create_bot(client)
        assert (await client.post(f"/bots/{bot_id}/start", headers=HEADERS)).status_code == 200
        pid = await running_pid(client, bot_id)
        log = log_dir / f"bot-{bot_id}.log"
        # observed running can come before the workload's first line (or its log file): wait for it
        await wait_for(lambda: "start paused=0 version=1" in _text(log))

        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        new_pid = await running_pid(client, bot_id, other_than=pid)
        restart_s = time.monotonic() - killed_at
        assert restart_s <= 2.0, f"killed bot back after {restart_s:.2f}s"
        st = await status(client, bot_id)
        assert st["restarts"] == 1 and "died" in st["lastError"]

        # the workload installs its signal handlers first thing; wait until it has
        await wait_for(lambda: f"{new_pid} start" in _text(log))
        await client.post(f"/bots/{bot_id}/pause", headers=HEADERS)
        await wait_for(lambda: f"{new_pid} paused" in log.read_text())
        await wait_for(_state(client, bot_id, "paused"))
        assert alive(new_pid), "pausing keeps the process"
        await client.post(f"/bots/{bot_id}/resume", headers=HEADERS)
        await wait_for(lambda: f"{new_pid} resumed" in log.read_text())
        await wait_for(_state(client, bot_id, "running"))

        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        await wait_for(_state(client, bot_id, "stopped"))
        assert not alive(new_pid)
        assert f"{new_pid} term" in log.read_text(), "stop is a graceful SIGTERM"

        await client.post(f"/bots/{bot_id}/start", headers=HEADERS)
        third = await running_pid(client, bot_id, other_than=new_pid)
        assert (await client.delete(f"/bots/{bot_id}", headers=HEADERS)).status_code == 202
        await wait_for(lambda: _gone(client, bot_id))
        assert not alive(third)
        events = (await _events(rdb, bot_id))
        assert "crashed" in events


def _text(path) -> str:
    """The file's text, or "" while it does not exist yet."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _reconcile_passes() -> float:
    return sum(sample.value for metric in metrics.RECONCILE_TICKS.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


def _state(client, bot_id, wanted):
    async def check():
        st = await status(client, bot_id)
        return st is not None and st["observedState"] == wanted

    return check


async def _gone(client, bot_id) -> bool:
    return (await client.get(f"/bots/{bot_id}")).status_code == 404


async def _events(db, bot_id) -> list[str]:
    conn = await asyncpg.connect(db.admin_url)
    try:
        return [r["kind"] for r in await conn.fetch("SELECT kind FROM trading.bot_events WHERE bot_id = $1", bot_id)]
    finally:
        await conn.close()


async def test_crash_loop_is_quarantined_until_cleared(rdb, data_dir, log_dir):
    before = metrics.BOT_QUARANTINES._value.get()
    settings = reconcile_settings(rdb, data_dir, log_dir, mode="crash")
    async with running_app(settings) as (app, client):
        bot_id = await create_bot(client, desiredState="running")
        await wait_for(_state(client, bot_id, "quarantined"), timeout=20)
        st = await status(client, bot_id)
        assert st["quarantined"] and "crash-looping: 3 failures" in st["quarantineReason"]
        assert "exit code 3" in st["quarantineReason"]
        assert metrics.BOT_QUARANTINES._value.get() == before + 1
        assert "quarantined" in await _events(rdb, bot_id)
        starts = (log_dir / f"bot-{bot_id}.log").read_text().count("start")
        # stays quarantined: three more reconcile passes start nothing (waiting on passes, not on time)
        passes = _reconcile_passes()
        await wait_for(lambda: _reconcile_passes() >= passes + 3, timeout=20)
        assert (log_dir / f"bot-{bot_id}.log").read_text().count("start") == starts
        cleared = await client.post(f"/bots/{bot_id}/clear-quarantine", headers=HEADERS)
        assert cleared.status_code == 200
        await wait_for(lambda: (log_dir / f"bot-{bot_id}.log").read_text().count("start") > starts, timeout=10)
        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)


async def test_manager_restart_adopts_instead_of_duplicating(rdb, data_dir, log_dir):
    settings = reconcile_settings(rdb, data_dir, log_dir)
    async with running_app(settings) as (app, client):
        bot_id = await create_bot(client, desiredState="running")
        pid = await running_pid(client, bot_id)
    assert alive(pid), "bots outlive the manager"
    async with running_app(settings) as (app, client):
        reconciler = app.state.ctx.services.reconciler
        await wait_for(lambda: reconciler.leader.is_leader)
        await wait_for(lambda: reconciler.iterations >= 3)
        assert pid_of(await status(client, bot_id)) == pid
        log = (log_dir / f"bot-{bot_id}.log").read_text()
        assert log.count("start") == 1, log
        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        await wait_for(lambda: not alive(pid))


async def test_spec_change_replaces_the_workload(rdb, data_dir, log_dir):
    async with running_app(reconcile_settings(rdb, data_dir, log_dir)) as (app, client):
        bot_id = await create_bot(client, desiredState="running")
        pid = await running_pid(client, bot_id)
        bot = (await client.get(f"/bots/{bot_id}")).json()
        body = {k: bot[k] for k in ("name", "strategy", "symbol", "interval", "mode", "image")}
        body["params"] = {"fast": 6, "slow": 20}
        response = await client.put(f"/bots/{bot_id}", json=body, headers={**HEADERS, "If-Match": '"1"'})
        assert response.status_code == 200 and response.json()["specVersion"] == 2
        new_pid = await running_pid(client, bot_id, other_than=pid)
        assert not alive(pid)
        await wait_for(lambda: f"{new_pid} start paused=0 version=2" in (log_dir / f"bot-{bot_id}.log").read_text())
        assert (await status(client, bot_id))["observedVersion"] == 2
        await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        await wait_for(lambda: not alive(new_pid))
