"""ProcessRuntime against real child processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
from pathlib import Path

import psutil
import pytest

from gordon_manager.runtimes import (
    ProcessRuntime,
    RuntimeConfigError,
    RuntimeUnavailable,
    WorkloadNotFound,
    WorkloadSpec,
)
from gordon_manager.runtimes.process import RUNTIME_ENV, STATE_FILE, VERSION_ENV

LOOP = "while :; do sleep 0.05; done"


async def traps_ready(marker: Path, timeout: float = 20.0) -> None:
    """Wait until the workload has written ``marker`` (right after installing its traps)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not marker.exists():
        assert asyncio.get_running_loop().time() < deadline, "the workload never installed its traps"
        await asyncio.sleep(0.02)


def spec(
    bot_id: int, script: str = LOOP, *, version: int = 1, env: dict[str, str] | None = None
) -> WorkloadSpec:
    return WorkloadSpec(
        bot_id=bot_id,
        config_version=version,
        name=f"gordon-bot-{bot_id}",
        image="ignored",
        command=("/bin/sh", "-c", script),
        env=env or {"GORDON_BOT_ID": str(bot_id)},
    )


def pid_of(observed) -> int:
    return int(observed.workload_id.removeprefix("pid:"))


async def test_start_runs_the_bot_and_observe_reports_it(process_runtime: ProcessRuntime) -> None:
    started = await process_runtime.start(spec(1))
    assert started.state == "running" and started.config_version == 1 and started.started_at is not None
    assert psutil.pid_exists(pid_of(started))
    assert (await process_runtime.observe())[1] == started
    await process_runtime.ping()


async def test_start_is_idempotent_and_replaces_older_versions(process_runtime: ProcessRuntime) -> None:
    first = await process_runtime.start(spec(2))
    again = await process_runtime.start(spec(2))
    assert again.workload_id == first.workload_id
    newer = await process_runtime.start(spec(2, version=2))
    assert newer.workload_id != first.workload_id and newer.config_version == 2
    assert (
        not psutil.pid_exists(pid_of(first)) or psutil.Process(pid_of(first)).status() == psutil.STATUS_ZOMBIE
    )


async def test_stop_is_graceful_then_idempotent(process_runtime: ProcessRuntime, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    started = await process_runtime.start(spec(3, f'trap "exit 7" TERM; touch {ready}; ' + LOOP))
    await traps_ready(ready)  # the trap is in place before the stop (no fixed sleep)
    await process_runtime.stop(3, timeout_s=5)
    observed = (await process_runtime.observe())[3]
    assert observed.state == "exited"
    assert observed.exit_code == 7  # our TERM trap ran: the stop was graceful
    await process_runtime.stop(3)
    await process_runtime.stop(999)  # unknown bot: no error
    restarted = await process_runtime.start(spec(3))
    assert restarted.state == "running" and restarted.workload_id != started.workload_id


async def test_stop_kills_a_bot_that_ignores_sigterm(process_runtime: ProcessRuntime, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    started = await process_runtime.start(spec(4, f'trap "" TERM; touch {ready}; ' + LOOP))
    await traps_ready(ready)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await process_runtime.stop(4, timeout_s=0.5)
    assert loop.time() - t0 < 3
    assert (await process_runtime.observe())[4].state == "exited"
    assert (
        not psutil.pid_exists(pid_of(started))
        or psutil.Process(pid_of(started)).status() == psutil.STATUS_ZOMBIE
    )


async def test_remove_forgets_the_bot(process_runtime: ProcessRuntime) -> None:
    started = await process_runtime.start(spec(5))
    await process_runtime.remove(5)
    assert 5 not in await process_runtime.observe()
    assert (
        not psutil.pid_exists(pid_of(started))
        or psutil.Process(pid_of(started)).status() == psutil.STATUS_ZOMBIE
    )
    await process_runtime.remove(5)


async def test_restarted_manager_adopts_live_processes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ProcessRuntime(state_dir=state)
    started = await first.start(spec(6))
    await first.close()

    second = ProcessRuntime(state_dir=state)
    try:
        observed = await second.observe()
        assert observed[6].workload_id == started.workload_id and observed[6].state == "running"
        adopted = await second.start(spec(6))
        assert adopted.workload_id == started.workload_id  # no duplicate
        bots = [
            p
            for p in psutil.process_iter(["environ", "cmdline", "status"])
            if (p.info["environ"] or {}).get("GORDON_BOT_ID") == "6"
            and (p.info["cmdline"] or [])[:2] == ["/bin/sh", "-c"]
            and p.info["status"] != psutil.STATUS_ZOMBIE
        ]
        assert len(bots) == 1
        await second.stop(6, timeout_s=2)
        assert (await second.observe())[6].state == "exited"
    finally:
        await second.remove(6)
        await second.close()


async def test_recycled_pid_is_never_adopted_or_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ProcessRuntime(state_dir=state)
    await first.start(spec(7))
    await first.remove(7)
    await first.close()
    # The recorded pid now belongs to an unrelated process (not started by a runtime: no marker), which
    # happened to get the same pid: its create time differs from the record's.
    other = subprocess.Popen(["/bin/sh", "-c", LOOP], env={"PATH": os.environ["PATH"]}, start_new_session=True)
    try:
        path = state / STATE_FILE
        path.write_text(json.dumps({"bots": [{
            "bot_id": 7, "pid": other.pid, "create_time": psutil.Process(other.pid).create_time() - 1000,
            "config_version": 1, "name": "gordon-bot-7", "started_at": 0.0, "log_path": str(state / "x.log")}]}))

        second = ProcessRuntime(state_dir=state)
        assert (await second.observe())[7].state == "exited"
        await second.stop(7, timeout_s=0.2)
        assert other.poll() is None  # not ours: untouched
        fresh = await second.start(spec(7))
        assert pid_of(fresh) != other.pid
        await second.remove(7)
    finally:
        other.kill()
        other.wait()


def bot_pids(bot_id: int, state: Path) -> list[int]:
    """Live /bin/sh bot processes of ``bot_id`` started for the runtime of ``state`` (session leaders)."""
    mine = str(state.resolve())
    out = []
    for p in psutil.process_iter(["pid", "environ", "cmdline", "status"]):
        env = p.info["environ"] or {}
        if (env.get("GORDON_BOT_ID") == str(bot_id) and env.get(RUNTIME_ENV) == mine
                and (p.info["cmdline"] or [])[:2] == ["/bin/sh", "-c"] and p.info["status"] != psutil.STATUS_ZOMBIE):
            with contextlib.suppress(OSError):
                if os.getsid(p.info["pid"]) == p.info["pid"]:
                    out.append(p.info["pid"])
    return sorted(out)


def orphan(state: Path, bot_id: int, script: str = LOOP, version: int = 1) -> subprocess.Popen:
    """What a manager that died right after spawning leaves behind: a marked bot process, unrecorded."""
    return subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True, env={
        "PATH": os.environ["PATH"], "GORDON_BOT_ID": str(bot_id), RUNTIME_ENV: str(state.resolve()),
        VERSION_ENV: str(version)})


async def test_a_process_its_dead_manager_never_recorded_is_adopted_not_doubled(tmp_path: Path) -> None:
    # A manager killed between spawning a bot and writing its record (kill -9, a failpoint) leaves a
    # running bot that no record names: the next runtime on the state dir adopts it (before its first
    # observe or start) instead of starting a second process for the bot.
    state = tmp_path / "state"
    first = ProcessRuntime(state_dir=state)
    started = await first.start(spec(31, version=4))
    await first.close()
    (state / STATE_FILE).write_text(json.dumps({"bots": []}))  # as if the record was never written

    second = ProcessRuntime(state_dir=state)
    try:
        observed = (await second.observe())[31]
        assert observed.workload_id == started.workload_id and observed.state == "running"
        assert observed.config_version == 4
        assert json.loads((state / STATE_FILE).read_text())["bots"][0]["pid"] == pid_of(started)  # recorded now
        again = await second.start(spec(31, version=4))
        assert again.workload_id == started.workload_id and bot_pids(31, state) == [pid_of(started)]
        newer = await second.start(spec(31, version=5))  # and it is managed: replaced like any other
        assert bot_pids(31, state) == [pid_of(newer)] != [pid_of(started)]
    finally:
        await second.remove(31)
        await second.close()
    assert bot_pids(31, state) == []


async def test_the_first_start_waits_for_the_scan_and_adopts_instead_of_spawning(tmp_path: Path) -> None:
    state = tmp_path / "state"
    left = orphan(state, 34, version=2)
    runtime = ProcessRuntime(state_dir=state)
    try:
        started = await runtime.start(spec(34, version=2))  # no observe before: start scans first
        assert pid_of(started) == left.pid and bot_pids(34, state) == [left.pid]
    finally:
        await runtime.remove(34)
        await runtime.close()
    assert left.wait(10) is not None


async def test_an_unrecorded_second_process_of_a_bot_is_stopped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = ProcessRuntime(state_dir=state)
    kept = await first.start(spec(32))
    await first.close()
    other = ProcessRuntime(state_dir=tmp_path / "elsewhere")  # a runtime of another state dir: left alone
    foreign = await other.start(spec(32))
    polite = orphan(state, 32)
    stubborn = orphan(state, 32, 'trap "" TERM; ' + LOOP)  # ignores SIGTERM: SIGKILL follows
    try:
        assert bot_pids(32, state) == sorted([pid_of(kept), polite.pid, stubborn.pid])
        third = ProcessRuntime(state_dir=state, replace_timeout_s=0.5)
        try:
            assert (await third.observe())[32].workload_id == kept.workload_id  # stops both before answering
            assert polite.wait(10) is not None and stubborn.wait(10) == -9
            assert bot_pids(32, state) == [pid_of(kept)]
            assert bot_pids(32, tmp_path / "elsewhere") == [pid_of(foreign)]
        finally:
            await third.remove(32)
            await third.close()
    finally:
        for proc in (polite, stubborn):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        await other.remove(32)
        await other.close()


async def test_a_bots_own_child_is_never_adopted_as_the_bot(tmp_path: Path) -> None:
    # A bot's children inherit its environment, marker included; when the bot's main process is gone,
    # a surviving child must not pass for the bot (it does not lead a session), or the bot could
    # never be restarted nor stopped.
    state = tmp_path / "state"
    first = ProcessRuntime(state_dir=state)
    started = await first.start(spec(33, "sleep 300 & wait"))
    await first.close()
    child = None
    for _ in range(500):
        kids = psutil.Process(pid_of(started)).children()
        if kids:
            child = kids[0]
            break
        await asyncio.sleep(0.01)
    assert child is not None and (child.environ() or {}).get(RUNTIME_ENV) == str(state.resolve())
    os.kill(pid_of(started), 9)  # the bot's main process only: its child lives on
    (state / STATE_FILE).write_text(json.dumps({"bots": []}))
    second = ProcessRuntime(state_dir=state)
    try:
        assert 33 not in await second.observe()
        assert child.is_running()
        fresh = await second.start(spec(33))
        assert pid_of(fresh) not in (child.pid, pid_of(started))
    finally:
        await second.remove(33)
        await second.close()
        child.kill()


async def test_died_event_arrives_promptly_with_exit_code(
    process_runtime: ProcessRuntime, collect_events
) -> None:
    events = collect_events(process_runtime)  # events() snapshots at once: nothing after this is missed
    started = await process_runtime.start(spec(8, "sleep 0.3; exit 3"))
    await events.wait_for(bot_id=8, kind="started")
    died = await events.wait_for(bot_id=8, kind="died", timeout_s=2.0)
    assert died.workload_id == started.workload_id
    assert (await process_runtime.observe())[8].exit_code == 3
    await process_runtime.remove(8)
    await events.wait_for(bot_id=8, kind="removed")


async def test_kill_from_outside_is_reported_within_two_seconds(
    process_runtime: ProcessRuntime, collect_events
) -> None:
    events = collect_events(process_runtime)
    started = await process_runtime.start(spec(9))
    await events.wait_for(bot_id=9, kind="started")
    os.kill(pid_of(started), 9)
    await events.wait_for(bot_id=9, kind="died", timeout_s=2.0)
    assert (await process_runtime.observe())[9].exit_code == -9


async def test_signal_is_delivered(process_runtime: ProcessRuntime, tmp_path: Path) -> None:
    marker = tmp_path / "signals"
    await process_runtime.start(
        spec(10, f'trap "echo usr1 >> {marker}" USR1; trap "echo usr2 >> {marker}" USR2; touch {marker}.ready; '
             + LOOP)
    )
    await traps_ready(Path(f"{marker}.ready"))
    await process_runtime.signal(10, "SIGUSR1")
    await process_runtime.signal(10, "USR2")
    for _ in range(50):
        if marker.exists() and marker.read_text().split() == ["usr1", "usr2"]:
            break
        await asyncio.sleep(0.05)
    assert marker.read_text().split() == ["usr1", "usr2"]
    with pytest.raises(RuntimeConfigError):
        await process_runtime.signal(10, "SIGNOPE")
    with pytest.raises(WorkloadNotFound):
        await process_runtime.signal(404, "SIGUSR1")


async def test_env_is_explicit_and_output_goes_to_the_log(
    process_runtime: ProcessRuntime, monkeypatch
) -> None:
    monkeypatch.setenv("GORDON_MANAGER_OPERATOR_TOKEN", "must-not-leak")
    await process_runtime.start(
        spec(11, 'echo "id=$GORDON_BOT_ID token=$GORDON_MANAGER_OPERATOR_TOKEN"; ' + LOOP)
    )
    log = Path(process_runtime._dir) / "logs" / "gordon-bot-11.log"
    for _ in range(50):
        if "id=" in log.read_text():
            break
        await asyncio.sleep(0.05)
    assert "id=11 token=\n" in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600, "bot logs are private"
    assert log.parent.stat().st_mode & 0o777 == 0o700


async def test_invalid_commands_are_config_errors(process_runtime: ProcessRuntime) -> None:
    with pytest.raises(RuntimeConfigError):
        await process_runtime.start(
            WorkloadSpec(bot_id=12, config_version=1, name="b", image="", command=(), env={})
        )
    with pytest.raises(RuntimeConfigError):
        await process_runtime.start(
            WorkloadSpec(
                bot_id=12, config_version=1, name="b", image="", command=("/nonexistent/bot",), env={}
            )
        )
    assert 12 not in await process_runtime.observe()


async def test_corrupt_state_file_starts_empty(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_FILE).write_text("{not json")
    runtime = ProcessRuntime(state_dir=state)
    assert await runtime.observe() == {}
    (state / STATE_FILE).write_text(json.dumps({"bots": [{"bot_id": 1, "unexpected": True}]}))
    assert await ProcessRuntime(state_dir=state).observe() == {}


async def test_unusable_state_dir_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RuntimeConfigError):
        ProcessRuntime(state_dir=blocker / "sub")


# -- never two processes, never a blocked loop (issue 18, item 5) --------------------------------------
async def test_a_process_that_survives_sigkill_is_neither_doubled_nor_forgotten(tmp_path: Path, monkeypatch) -> None:
    runtime = ProcessRuntime(state_dir=tmp_path / "state", replace_timeout_s=0.2)
    mark = {"GORDON_BOT_ID": "30", "GORDON_TEST_MARK": str(tmp_path)}  # this test's processes, no one else's
    try:
        first = await runtime.start(spec(30, env=mark))
        # Fault injection: signals do not reach the process (as for one stuck in an uninterruptible wait).
        monkeypatch.setattr(ProcessRuntime, "_kill_group", staticmethod(lambda rec, sig: None))
        with pytest.raises(RuntimeUnavailable, match="still alive after SIGKILL"):
            await runtime.start(spec(30, version=2, env=mark))  # a new version would replace it: it cannot die
        with pytest.raises(RuntimeUnavailable):
            await runtime.remove(30)
        with pytest.raises(RuntimeUnavailable):
            await runtime.stop(30, timeout_s=0.1)
        observed = (await runtime.observe())[30]
        assert observed.workload_id == first.workload_id and observed.state == "running"  # still recorded
        assert observed.config_version == 1
        bots = [p for p in psutil.process_iter(["environ"])  # session leaders: a bot, not its shell's children
                if (p.info["environ"] or {}).get("GORDON_TEST_MARK") == str(tmp_path) and _leads_session(p.pid)]
        assert [p.pid for p in bots] == [pid_of(first)]  # one process for the bot, the first
        monkeypatch.undo()
        await runtime.remove(30)
        assert not psutil.pid_exists(pid_of(first)) or psutil.Process(pid_of(first)).status() == psutil.STATUS_ZOMBIE
    finally:
        monkeypatch.undo()
        await runtime.remove(30)
        await runtime.close()


def _leads_session(pid: int) -> bool:
    try:
        return os.getsid(pid) == pid
    except ProcessLookupError:
        return False


async def test_fork_exec_and_the_liveness_scans_run_off_the_event_loop(tmp_path: Path, monkeypatch) -> None:
    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"spawn": set(), "liveness": set()}
    spawn, liveness = ProcessRuntime._spawn, ProcessRuntime._liveness

    def spy_spawn(self, spec):
        threads["spawn"].add(threading.get_ident())
        return spawn(self, spec)

    def spy_liveness(self, rec, **kwargs):
        threads["liveness"].add(threading.get_ident())
        return liveness(self, rec, **kwargs)

    monkeypatch.setattr(ProcessRuntime, "_spawn", spy_spawn)
    monkeypatch.setattr(ProcessRuntime, "_liveness", spy_liveness)
    runtime = ProcessRuntime(state_dir=tmp_path / "state", poll_interval_s=0.05)
    try:
        await runtime.start(spec(31))
        await runtime.observe()
        stream = runtime.events()
        threads["liveness"].clear()  # events() takes its first snapshot synchronously (no reaping)
        await runtime.stop(31, timeout_s=5)
        event = await asyncio.wait_for(anext(stream), timeout=10)
        assert event.kind == "stopped"  # we stopped it: not a death (a kill from outside is "died", above)
        assert threads["spawn"] and loop_thread not in threads["spawn"]
        assert threads["liveness"] and loop_thread not in threads["liveness"]
    finally:
        await runtime.remove(31)
        await runtime.close()


async def test_signal_waits_for_the_bots_lock(process_runtime: ProcessRuntime, tmp_path: Path) -> None:
    await process_runtime.start(spec(32))
    lock = process_runtime._lock(32)
    await lock.acquire()  # as a start replacing the process would hold it
    sent = asyncio.create_task(process_runtime.signal(32, "SIGUSR1"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not sent.done()
    lock.release()
    await asyncio.wait_for(sent, timeout=10)


async def test_concurrent_starts_of_many_bots_keep_every_record(tmp_path: Path) -> None:
    """Saves run on threads: the state file must end with every bot (no write overwrites a newer one)."""
    runtime = ProcessRuntime(state_dir=tmp_path / "state")
    try:
        await asyncio.gather(*(runtime.start(spec(40 + i)) for i in range(12)))
        on_disk = json.loads((tmp_path / "state" / STATE_FILE).read_text())
        assert sorted(b["bot_id"] for b in on_disk["bots"]) == list(range(40, 52))
        again = ProcessRuntime(state_dir=tmp_path / "state")
        assert sorted(await again.observe()) == list(range(40, 52))  # a restarted manager adopts them all
    finally:
        await asyncio.gather(*(runtime.remove(40 + i) for i in range(12)))
        await runtime.close()


@pytest.fixture
def cpu_cgroup():
    """A cgroup of this test's own (v2, or v1's cpu controller), removed afterwards."""
    import uuid

    root = Path("/sys/fs/cgroup")
    parent = root if (root / "cgroup.controllers").is_file() else root / "cpu"
    if not (parent / "cgroup.procs").is_file():
        pytest.fail(f"no cgroup v2 or v1 cpu controller mounted at {root}: this test needs one (any Linux with cgroups)")
    group = parent / f"gordon-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except PermissionError:
        pytest.fail(f"cannot create a cgroup under {parent}: run the tests as root (CI does) or delegate it")
    yield group
    for pid in (group / "cgroup.procs").read_text().split():
        with contextlib.suppress(OSError):
            (parent / "cgroup.procs").write_text(pid)
    group.rmdir()


async def test_bots_are_moved_into_the_configured_cgroup(tmp_path: Path, cpu_cgroup: Path) -> None:
    """GORDON_MANAGER_BOT_CGROUP: every bot process starts in the bots' CPU group (runtimes/cgroup.py)."""
    runtime = ProcessRuntime(state_dir=tmp_path / "state", cgroup=cpu_cgroup)
    try:
        pids = [pid_of(await runtime.start(spec(bot_id))) for bot_id in (60, 61)]
        held = {int(pid) for pid in (cpu_cgroup / "cgroup.procs").read_text().split()}
        assert set(pids) <= held  # with what they fork since (the shell's `sleep`): children stay in the group
        assert held <= {p.pid for pid in pids for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]} | {
            p for p in held if not psutil.pid_exists(p)}
        for pid in pids:  # as the kernel reports it for the process itself
            assert any(line.endswith("/" + cpu_cgroup.name) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    finally:
        await asyncio.gather(runtime.remove(60), runtime.remove(61))
        await runtime.close()
    assert (cpu_cgroup / "cgroup.procs").read_text().split() == []


async def test_a_directory_that_is_not_a_cgroup_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(RuntimeConfigError, match=r"GORDON_MANAGER_BOT_CGROUP=.*not a cgroup directory"):
        ProcessRuntime(state_dir=tmp_path / "state", cgroup=tmp_path)


def test_a_process_the_kernel_will_not_move_is_reported_not_raised(cpu_cgroup: Path, caplog) -> None:
    """A bot that cannot be moved keeps running where it is (latency, not trading): add() says False and logs."""
    from gordon_manager.runtimes.cgroup import CpuGroup

    group = CpuGroup(cpu_cgroup)
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert group.add(gone.pid) is False
    assert "not moved into cgroup" in caplog.text
    assert group.holds(gone.pid) is False
    assert group.add(os.getpid()) is True and group.holds(os.getpid())
    (cpu_cgroup.parent / "cgroup.procs").write_text(str(os.getpid()))  # the test process back where it was
