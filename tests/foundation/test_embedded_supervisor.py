"""The embedded PostgreSQL is supervised (issue 14, item 6): a postmaster that dies is restarted.

End to end: a real `gordon-manager serve`, its postmaster killed with SIGKILL, /readyz back to 200
and a write accepted without any manual step. Unit: the backoff policy, the watch loop against a
fake server (deaths, failures, blocked starts, resets) and a deliberate stop that is never undone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from gordon_manager.db import supervisor as sup_mod
from gordon_manager.db.supervisor import (
    EmbeddedDbSupervisor,
    SupervisorPolicy,
    cluster_processes,
    live_postmaster_pid,
    postmaster_alive,
    read_postmaster_pid,
    restart_delay,
)
from gordon_manager.observability import metrics
from tests.foundation.test_cli import GM, env_for, free_port, stop, wait_healthy

DEADLINE_S = 60.0


def wait_until(condition, *, timeout: float = DEADLINE_S, what: str = "condition", poll: float = 0.05):
    """Poll ``condition`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


# -- end to end ------------------------------------------------------------------------------------
def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def own_dir():
    """A temp dir outside pytest's basetemp: run as root, the embedded server runs as another user that
    must traverse the path, and every pytest session that starts resets /tmp/pytest-of-<user> to 0700."""
    path = Path(tempfile.mkdtemp(prefix="gm-embedded-sup-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_restarts_a_killed_postmaster_and_recovers_by_itself(own_dir):
    data_dir = own_dir / "gm-data"
    port = free_port()
    env = env_for(data_dir, port, GORDON_MANAGER_EMBEDDED_DB_CHECK_INTERVAL_S="0.2")
    proc = subprocess.Popen([*GM, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pgdata = data_dir / "pgdata"
    new_pid = None
    try:
        wait_healthy(port, proc)
        wait_until(lambda: _ready(port), what="/readyz 200 at start")
        old_pid = read_postmaster_pid(pgdata)
        assert old_pid is not None and postmaster_alive(old_pid)

        os.kill(old_pid, signal.SIGKILL)

        def recovered() -> int | None:
            new_pid = live_postmaster_pid(pgdata)
            return new_pid if new_pid not in (None, old_pid) and _ready(port) else None

        new_pid = wait_until(recovered, what="a new postmaster and /readyz 200 again")
        assert proc.poll() is None

        token = (data_dir / "operator-token").read_text().strip()
        created = httpx.post(f"http://127.0.0.1:{port}/bots", headers={"X-Operator-Token": token}, timeout=10,
                             json={"name": "after-restart", "strategy": "sma_crossover", "symbol": "BTCUSDT",
                                   "interval": "1m", "params": {"fast": 10, "slow": 30}})
        assert created.status_code == 201, created.text
        assert httpx.get(f"http://127.0.0.1:{port}/bots/{created.json()['id']}", timeout=10).status_code == 200

        check = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["checks"]["embeddedDatabase"]
        assert check["ok"] and check["state"] == "running" and check["pid"] == new_pid
        assert check["deaths"] >= 1 and check["restarts"] >= 1 and check["lastDeathAt"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'gordon_manager_embedded_db_restarts_total{outcome="ok"}' in text
        assert "gordon_manager_embedded_db_up 1.0" in text
    finally:
        stop(proc)
    stderr = proc.stderr.read()
    assert "embedded postgres died; restarting" in stderr and "embedded postgres restarted" in stderr
    # The deliberate stop at exit stopped the restarted server, and nothing started it again.
    assert new_pid is not None
    wait_until(lambda: not postmaster_alive(new_pid), what="the restarted postmaster to stop at exit")
    assert live_postmaster_pid(pgdata) is None


# -- the backoff policy ------------------------------------------------------------------------------
def test_restart_delay_doubles_from_the_base_up_to_the_max():
    delays = [restart_delay(n, base_s=0.5, max_s=30.0) for n in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert restart_delay(10_000, base_s=0.5, max_s=30.0) == 30.0
    with pytest.raises(ValueError):
        restart_delay(-1, base_s=0.5, max_s=30.0)


# -- the watch loop against a fake server -----------------------------------------------------------
class World:
    """A fake postmaster: ``pid`` None when dead; ``start()`` brings up a new one unless told to fail."""

    def __init__(self) -> None:
        self.pid: int | None = 100
        self.starts = 0
        self.fail_next = 0
        self.leftovers: list[int] = []
        self.now = 0.0

    def probe(self, _pgdata: Path) -> int | None:
        return self.pid

    def start(self) -> None:
        self.starts += 1
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("pg_ctl exited with 1")
        self.pid = 200 + self.starts

    def clock(self) -> float:
        return self.now


POLICY = SupervisorPolicy(check_interval_s=1.0, backoff_base_s=0.5, backoff_max_s=4.0, backoff_reset_s=60.0)


def make_supervisor(tmp_path: Path, world: World, policy: SupervisorPolicy = POLICY, **kwargs) -> EmbeddedDbSupervisor:
    server = SimpleNamespace(pgdata=tmp_path, _lock=threading.Lock(), _postmaster_info=None)
    return EmbeddedDbSupervisor(server, policy, probe=kwargs.pop("probe", world.probe),
                                leftovers=lambda _p: world.leftovers, start=world.start, clock=world.clock, **kwargs)


def restarts(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("gordon_manager_embedded_db_restarts_total", {"outcome": outcome}) or 0.0


def test_a_dead_postmaster_is_restarted_after_the_first_delay(tmp_path, caplog):
    world = World()
    sup = make_supervisor(tmp_path, world)
    ok_before, deaths_before = restarts("ok"), metrics.EMBEDDED_DB_DEATHS._value.get()
    assert sup.step() == 1.0 and world.starts == 0 and sup.snapshot()["state"] == "running"

    world.pid = None
    with caplog.at_level(logging.INFO, logger="gordon_manager.db.supervisor"):
        assert sup.step() == 0.5  # died: look again when the first restart is due
        assert sup.state == "down" and sup.deaths == 1 and world.starts == 0
        assert sup.snapshot()["nextAttemptInS"] == 0.5
        world.now += 0.5
        sup.step()
    assert world.starts == 1 and sup.state == "running" and sup.pid == 201 and sup.restarts == 1
    assert restarts("ok") == ok_before + 1
    assert metrics.EMBEDDED_DB_DEATHS._value.get() == deaths_before + 1
    assert metrics.EMBEDDED_DB_UP._value.get() == 1
    messages = [r.getMessage() for r in caplog.records]
    assert "embedded postgres died; restarting" in messages and "embedded postgres restarted" in messages


def test_the_delay_doubles_while_it_keeps_dying_and_resets_once_it_stays_up(tmp_path):
    world = World()
    sup = make_supervisor(tmp_path, world)
    delays = []
    for _ in range(5):  # dies soon after each restart
        world.pid = None
        sup.step()  # seen dead
        delays.append(sup.snapshot()["nextAttemptInS"])
        world.now += delays[-1]
        sup.step()  # restarted
        assert sup.state == "running"
        world.now += 1.0
        sup.step()  # up, but not for the reset time
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0] and world.starts == 5

    world.now += 60.0
    sup.step()  # up for the reset time: the next death waits the base again
    world.pid = None
    sup.step()
    assert sup.snapshot()["nextAttemptInS"] == 0.5


def test_a_failed_restart_is_retried_after_a_longer_delay(tmp_path):
    world = World()
    world.fail_next = 1
    sup = make_supervisor(tmp_path, world)
    failed_before = restarts("failed")
    world.pid = None
    sup.step()
    world.now += 0.5
    sup.step()
    assert world.starts == 1 and sup.state == "down" and sup.failed_restarts == 1
    assert restarts("failed") == failed_before + 1
    snap = sup.snapshot()
    assert snap["ok"] is False and "pg_ctl exited with 1" in snap["lastError"] and snap["nextAttemptInS"] == 1.0
    world.now += 0.5
    sup.step()
    assert world.starts == 1  # not due yet
    world.now += 0.5
    sup.step()
    assert world.starts == 2 and sup.state == "running" and "lastError" not in sup.snapshot()


def test_a_start_is_blocked_while_processes_of_the_dead_server_remain(tmp_path):
    world = World()
    world.leftovers = [4242]
    sup = make_supervisor(tmp_path, world)
    blocked_before = restarts("blocked")
    world.pid = None
    sup.step()
    world.now += 0.5
    sup.step()
    assert world.starts == 0 and restarts("blocked") == blocked_before + 1 and "4242" in sup.last_error
    world.leftovers = []
    world.now += 1.0
    sup.step()
    assert world.starts == 1 and sup.state == "running"


def test_a_server_another_process_started_meanwhile_is_adopted(tmp_path):
    world = World()
    answers = iter([100, None, None, 777, 777])
    sup = make_supervisor(tmp_path, world, probe=lambda _p: next(answers))
    world.pid = None
    sup.step()
    world.now += 0.5
    sup.step()
    assert world.starts == 0 and sup.state == "running" and sup.pid == 777


def test_a_deliberate_stop_is_never_restarted(tmp_path):
    world = World()
    sup = make_supervisor(tmp_path, world)
    sup.stop()
    world.pid = None
    for _ in range(3):
        sup.step()
        world.now += 10.0
    sup._restart()
    assert world.starts == 0 and sup.state == "stopped" and sup.stopping


def test_stop_waits_for_a_restart_in_progress_and_no_restart_follows(tmp_path):
    world = World()
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_start() -> None:
        entered.set()
        assert release.wait(DEADLINE_S)
        world.start()
        order.append("started")

    policy = SupervisorPolicy(check_interval_s=0.01, backoff_base_s=0.01, backoff_max_s=0.02, backoff_reset_s=60.0)
    server = SimpleNamespace(pgdata=tmp_path, _lock=threading.Lock(), _postmaster_info=None)
    sup = EmbeddedDbSupervisor(server, policy, probe=world.probe, leftovers=lambda _p: [], start=slow_start)
    sup.start()
    try:
        assert sup_mod.active() is sup
        world.pid = None
        assert entered.wait(DEADLINE_S)
        stopper = threading.Thread(target=lambda: (sup.stop(), order.append("stopped")))
        stopper.start()
        wait_until(lambda: sup.stopping, what="stop requested")
        release.set()
        stopper.join(DEADLINE_S)
        assert order == ["started", "stopped"]
        world.pid = None  # dies again after the stop: nothing starts it
        assert not sup._thread.is_alive()
        sup.step()
        assert world.starts == 1 and sup.state == "stopped" and sup_mod.active() is None
    finally:
        release.set()
        sup.stop()


def test_the_thread_restarts_a_dead_server_until_stopped(tmp_path):
    world = World()
    policy = SupervisorPolicy(check_interval_s=0.01, backoff_base_s=0.01, backoff_max_s=0.02, backoff_reset_s=60.0)
    server = SimpleNamespace(pgdata=tmp_path, _lock=threading.Lock(), _postmaster_info=None)
    sup = EmbeddedDbSupervisor(server, policy, probe=world.probe, leftovers=lambda _p: [], start=world.start)
    sup.start()
    try:
        world.pid = None
        wait_until(lambda: world.starts == 1 and sup.state == "running", what="the thread to restart it")
    finally:
        sup.stop()
    assert not sup._thread.is_alive() and sup.state == "stopped"


def test_a_surprise_in_one_check_does_not_end_the_watch(tmp_path):
    world = World()
    calls = []

    def flaky_probe(_p: Path) -> int | None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("transient")
        return world.pid

    policy = SupervisorPolicy(check_interval_s=0.01, backoff_base_s=0.01, backoff_max_s=0.02, backoff_reset_s=60.0)
    server = SimpleNamespace(pgdata=tmp_path, _lock=threading.Lock(), _postmaster_info=None)
    sup = EmbeddedDbSupervisor(server, policy, probe=flaky_probe, leftovers=lambda _p: [], start=world.start)
    sup.start()
    try:
        wait_until(lambda: len(calls) >= 4, what="checks after the failed one")
    finally:
        sup.stop()


# -- the probes and the stale lock files ---------------------------------------------------------------
def test_probes(tmp_path):
    assert read_postmaster_pid(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text("not-a-pid\n")
    assert read_postmaster_pid(tmp_path) is None and live_postmaster_pid(tmp_path) is None
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")
    assert read_postmaster_pid(tmp_path) == os.getpid()
    assert not postmaster_alive(os.getpid())  # alive, but not a postgres (a reused pid)
    assert not postmaster_alive(None)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not postmaster_alive(gone.pid)
    assert cluster_processes(tmp_path) == []


def test_a_live_postgres_is_seen_alive(pg_server_url):
    """The postmaster of the test server (the process listening on its port; not any process named postgres:
    other tests' clusters come and go, and a dying one is a zombie)."""
    port = urlsplit(pg_server_url).port or 5432
    listening = {c.pid for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    if not listening:
        pytest.skip("the test server is not on this machine (GORDON_TEST_DATABASE_URL)")
    assert all(postmaster_alive(pid) for pid in listening)


def test_stale_lock_files_are_removed_before_a_start(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = tmp_path / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{tmp_path}\n1796319776\n5432\n{tmp_path}\n\n  1 2\nready\n")
    socket_lock = tmp_path / ".s.PGSQL.5432.lock"
    socket_lock.write_text(f"{gone.pid}\n{tmp_path}\n")
    other = tmp_path / "keep.txt"
    other.write_text("x")
    world = World()
    sup = make_supervisor(tmp_path, world)
    world.pid = None
    sup.step()
    world.now += 0.5
    sup.step()
    assert world.starts == 1
    assert not pid_file.exists() and not socket_lock.exists() and other.exists()
