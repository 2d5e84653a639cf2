"""Process runtime: bots as local child processes (the embedded default, no Docker needed).

Each bot's pid, process create time and config version are recorded in a JSON state file, so a
restarted manager adopts the processes it started instead of duplicating them. A pid is only
trusted when psutil reports the same create time, which rules out a recycled pid. A manager can die
between spawning a bot and recording it (kill -9, a failpoint): every bot process therefore carries
this runtime's state dir and its config version in its environment (``GORDON_PROCESS_RUNTIME``,
``GORDON_PROCESS_CONFIG_VERSION``), and before its first ``observe`` or ``start`` (only the leading
manager calls them) the runtime looks for such processes that no record names
(``_adopt_unrecorded``): session leaders of this user only (what ``_spawn`` starts: a bot's own
children inherit the marker but never lead a session), adopted for a bot without a live recorded
process, stopped like any replaced process (SIGTERM, then SIGKILL) when they would be the bot's second
one. Docker and Swarm find their workloads by label, so they need no such scan.

Never two processes for one bot: every operation on a bot (start, stop, remove, signal) holds that
bot's lock; a process that survives SIGTERM and then SIGKILL fails the operation
(``RuntimeUnavailable``) instead of being forgotten or doubled, and ``start`` spawns only once the
previous process is known dead. Never a blocked event loop: fork/exec, the liveness scans (psutil,
waitpid), reaping and the state file's reads and writes run on worker threads; the state file is
written by one writer at a time, from a snapshot taken under the same lock, so a slow write can never
overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal as _signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil

from gordon_manager.datadir import private_dir
from gordon_manager.runtimes.base import (
    Observed,
    RuntimeConfigError,
    RuntimeEvent,
    RuntimeUnavailable,
    WorkloadNotFound,
    WorkloadSpec,
    parse_signal,
)
from gordon_manager.runtimes.cgroup import CpuGroup

logger = logging.getLogger(__name__)

STATE_FILE = "processes.json"
RUNTIME_ENV = "GORDON_PROCESS_RUNTIME"  # the state dir of the runtime that started the process
VERSION_ENV = "GORDON_PROCESS_CONFIG_VERSION"
NAME_ENV = "GORDON_PROCESS_NAME"
DEFAULT_PASSTHROUGH_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "SSL_CERT_FILE",
)
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class ProcessRecord:
    """What the state file remembers about one bot's process."""

    bot_id: int
    pid: int
    create_time: float
    config_version: int
    name: str
    started_at: float
    log_path: str
    exit_code: int | None = None


class ProcessRuntime:
    """Bots as child processes in their own session, logging to <state_dir>/logs/<name>.log."""

    kind = "process"

    def __init__(
        self,
        *,
        state_dir: str | os.PathLike[str],
        poll_interval_s: float = 0.2,
        passthrough_env: Sequence[str] = DEFAULT_PASSTHROUGH_ENV,
        cwd: str | os.PathLike[str] | None = None,
        replace_timeout_s: float = 10.0,
        cgroup: str | os.PathLike[str] | None = None,
    ) -> None:
        self._dir = Path(state_dir)
        self._cgroup = CpuGroup(cgroup) if cgroup else None  # the bots' CPU group (runtimes/cgroup.py)
        self._logs = self._dir / "logs"
        self._state_path = self._dir / STATE_FILE
        self._marker = str(self._dir.resolve())  # RUNTIME_ENV of the bots this runtime starts
        self._poll_interval_s = poll_interval_s
        self._passthrough_env = tuple(passthrough_env)
        self._cwd = Path(cwd) if cwd is not None else None
        self._replace_timeout_s = replace_timeout_s  # SIGTERM grace when start replaces or remove stops a bot
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # pid -> our own child, to reap it
        self._locks: dict[int, asyncio.Lock] = {}
        self._save_lock = asyncio.Lock()
        self._terminated: set[int] = set()  # pids we stopped: their exit is reported as "stopped", not "died"
        self._closed = asyncio.Event()
        try:
            private_dir(self._logs)
            private_dir(self._dir)
        except OSError as exc:
            raise RuntimeConfigError(f"cannot create process state dir {self._dir}: {exc}") from exc
        self._records: dict[int, ProcessRecord] = self._load()
        self._scanned = False  # _adopt_unrecorded has run
        self._scan_lock = asyncio.Lock()

    # -- state file -----------------------------------------------------------------------------

    def _state_mtime(self) -> int | None:
        try:
            return self._state_path.stat().st_mtime_ns
        except OSError:
            return None

    async def _reload_if_changed(self) -> None:
        """Pick up records written by another manager on this host (a previous leader): adopt, never duplicate."""
        if self._state_mtime() != self._loaded_mtime and not self._save_lock.locked():
            self._records = await asyncio.to_thread(self._load)

    def _load(self) -> dict[int, ProcessRecord]:
        self._loaded_mtime = self._state_mtime()
        try:
            raw = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A corrupt file must not stop the manager; live bots are then restarted, never duplicated
            # while the old pid is still recorded elsewhere, so log loudly.
            logger.error("process state file %s unreadable (%s); starting empty", self._state_path, exc)
            return {}
        records = {}
        for item in raw.get("bots", []):
            try:
                rec = ProcessRecord(**item)
            except TypeError:
                logger.warning("skipping malformed process record %r", item)
                continue
            records[rec.bot_id] = rec
        return records

    def _unrecorded(self) -> list[ProcessRecord]:
        """Live bot processes this runtime started (marker, session leader, our uid) that no record names
        (same pid and create time), newest config version first, then newest start (on a thread)."""
        uid = os.getuid()
        recorded = {rec.pid: rec.create_time for rec in self._records.values()}
        found: list[ProcessRecord] = []
        for proc in psutil.process_iter(["pid", "environ", "create_time", "status", "uids"]):
            info = proc.info
            env = info["environ"] or {}
            if env.get(RUNTIME_ENV) != self._marker or info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                if info["uids"].real != uid or os.getsid(info["pid"]) != info["pid"]:
                    continue  # another user's process, or a bot's own child (it inherited the marker)
                bot_id, version = int(env["GORDON_BOT_ID"]), int(env[VERSION_ENV])
            except (AttributeError, KeyError, ValueError, OSError):
                continue
            known = recorded.get(info["pid"])
            if known is not None and abs(known - info["create_time"]) <= _CREATE_TIME_TOLERANCE_S:
                continue
            name = env.get(NAME_ENV) or f"gordon-bot-{bot_id}"
            found.append(ProcessRecord(bot_id=bot_id, pid=info["pid"], create_time=info["create_time"],
                                       config_version=version, name=name, started_at=info["create_time"],
                                       log_path=str(self._logs / f"{name}.log")))
        return sorted(found, key=lambda r: (r.config_version, r.create_time), reverse=True)

    async def _adopt_unrecorded(self) -> None:
        """Once, before the first observe/start: adopt each unrecorded bot process for a bot without a
        live recorded one; stop (SIGTERM, then SIGKILL) any that would be a bot's second process."""
        if self._scanned:
            return
        async with self._scan_lock:  # a concurrent first call waits for the scan (it may adopt its bot)
            if self._scanned:
                return
            adopted = False
            for rec in await asyncio.to_thread(self._unrecorded):
                async with self._lock(rec.bot_id):
                    current = self._records.get(rec.bot_id)
                    if current is not None and (await self._refresh(current))[1]:
                        logger.warning("bot %s: pid %s is an unrecorded second process (pid %s is recorded); "
                                       "stopping it", rec.bot_id, rec.pid, current.pid)
                        try:
                            await self._terminate(rec, timeout_s=self._replace_timeout_s)
                        except RuntimeUnavailable as exc:
                            logger.error("%s", exc)
                        continue
                    logger.warning("bot %s: adopting pid %s, started by a manager that died before recording "
                                   "it", rec.bot_id, rec.pid)
                    self._records[rec.bot_id] = rec
                    adopted = True
            if adopted:
                await self._save()
            self._scanned = True

    async def _save(self) -> None:
        """Write the records (on a thread). One writer at a time, each from the records as they are when
        its turn comes: a write never overwrites a newer one."""
        async with self._save_lock:
            body = json.dumps({"bots": [asdict(r) for r in sorted(self._records.values(), key=lambda r: r.bot_id)]},
                              indent=1)
            self._loaded_mtime = await asyncio.to_thread(self._write_state, body)

    def _write_state(self, body: str) -> int | None:
        # Write-then-rename so a crash mid-write never leaves a half file behind.
        tmp = self._state_path.with_suffix(".tmp")
        try:
            tmp.write_text(body)
            os.replace(tmp, self._state_path)
        except OSError as exc:
            raise RuntimeUnavailable(f"cannot write process state file {self._state_path}: {exc}") from exc
        return self._state_mtime()

    # -- liveness -------------------------------------------------------------------------------

    def _liveness(self, rec: ProcessRecord, *, reap: bool = True) -> tuple[bool, int | None]:
        """(alive, exit_code) of a recorded process; reaps our own children (unless ``reap`` is false: an
        exited child is then a zombie, dead to psutil, its exit code left for the next reaping call)."""
        child = self._children.get(rec.pid) if reap else None
        if child is not None:
            code = child.poll()
            if code is None:
                return True, None
            self._children.pop(rec.pid, None)
            # Popen reports death-by-signal as -N, distinct from any exit status.
            return False, code
        try:
            proc = psutil.Process(rec.pid)
            if abs(proc.create_time() - rec.create_time) > _CREATE_TIME_TOLERANCE_S:
                return False, rec.exit_code  # pid was recycled by an unrelated process
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False, rec.exit_code
            return True, None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False, rec.exit_code

    async def _refresh(self, rec: ProcessRecord) -> tuple[ProcessRecord, bool]:
        """Current record and liveness (checked on a thread); an exit code learned by reaping is persisted."""
        return (await self._refresh_many([rec]))[0]

    async def _refresh_many(self, recs: list[ProcessRecord]) -> list[tuple[ProcessRecord, bool]]:
        """``_refresh`` of several records with one thread hop (the event poll's scan of every bot)."""
        if not recs:
            return []
        states = await asyncio.to_thread(lambda: [self._liveness(rec) for rec in recs])
        out, learned = [], False
        for rec, (alive, code) in zip(recs, states, strict=True):
            if not alive and code is not None and rec.exit_code is None:
                rec = replace(rec, exit_code=code)
                if self._records.get(rec.bot_id, rec).pid == rec.pid:
                    self._records[rec.bot_id] = rec
                    learned = True
            out.append((rec, alive))
        if learned:
            await self._save()
        return out

    def _observed(self, rec: ProcessRecord, alive: bool) -> Observed:
        return Observed(
            bot_id=rec.bot_id,
            workload_id=f"pid:{rec.pid}",
            state="running" if alive else "exited",
            config_version=rec.config_version,
            exit_code=None if alive else rec.exit_code,
            started_at=datetime.fromtimestamp(rec.started_at, tz=UTC),
        )

    def _lock(self, bot_id: int) -> asyncio.Lock:
        return self._locks.setdefault(bot_id, asyncio.Lock())

    # -- protocol -------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Check the state directory is still writable."""
        if not os.access(self._dir, os.W_OK):
            raise RuntimeUnavailable(f"process state dir {self._dir} is not writable")

    async def observe(self) -> dict[int, Observed]:
        """Every recorded bot process, keyed by bot id."""
        await self._reload_if_changed()
        await self._adopt_unrecorded()
        return {rec.bot_id: self._observed(rec, alive)
                for rec, alive in await self._refresh_many(list(self._records.values()))}

    async def start(self, spec: WorkloadSpec) -> Observed:
        """Spawn the bot, adopting a live process of the same version, replacing an older one."""
        if not spec.command:
            raise RuntimeConfigError(f"bot {spec.bot_id}: the process runtime needs a command")
        await self._adopt_unrecorded()
        async with self._lock(spec.bot_id):
            current = self._records.get(spec.bot_id)
            if current is not None:
                rec, alive = await self._refresh(current)
                if alive and rec.config_version == spec.config_version:
                    return self._observed(rec, alive)
                if alive:
                    logger.info(
                        "bot %s: replacing pid %s (config v%s -> v%s)",
                        spec.bot_id,
                        rec.pid,
                        rec.config_version,
                        spec.config_version,
                    )
                    await self._terminate(rec, timeout_s=self._replace_timeout_s)  # raises if it survives
            rec, child = await asyncio.to_thread(self._spawn, spec)
            self._children[child.pid] = child
            previous = self._records.get(spec.bot_id)
            self._records[spec.bot_id] = rec
            try:
                await self._save()
            except RuntimeUnavailable:
                # An unrecorded child would be invisible to a restarted manager (a duplicate in
                # waiting): take it back down and report the failure.
                self._kill_group(rec, _signal.SIGKILL)
                self._children.pop(rec.pid, None)
                await asyncio.to_thread(child.wait, 5)
                if previous is None:
                    self._records.pop(spec.bot_id, None)
                else:
                    self._records[spec.bot_id] = previous
                raise
            return self._observed(rec, True)

    def _spawn(self, spec: WorkloadSpec) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
        """fork/exec the bot (on a worker thread: the caller records the child)."""
        env = {k: os.environ[k] for k in self._passthrough_env if k in os.environ}
        env.update(spec.env)
        # Who started it, so that a runtime opening this state dir finds it even unrecorded.
        env.update({RUNTIME_ENV: self._marker, VERSION_ENV: str(spec.config_version), NAME_ENV: spec.name,
                    "GORDON_BOT_ID": str(spec.bot_id)})
        log_path = self._logs / f"{spec.name}.log"
        try:
            with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
                os.chmod(log_path, 0o600)  # a log left from before with looser bits: bots log secrets' neighbours
                log.write(
                    f"--- {datetime.now(UTC).isoformat()} start config v{spec.config_version}\n".encode()
                )
                log.flush()
                child = subprocess.Popen(
                    list(spec.command),
                    env=env,
                    cwd=self._cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: stop() can signal the whole tree
                    close_fds=True,
                )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise RuntimeConfigError(f"bot {spec.bot_id}: cannot execute {spec.command[0]!r}: {exc}") from exc
        except OSError as exc:
            raise RuntimeUnavailable(f"bot {spec.bot_id}: spawn failed: {exc}") from exc
        if self._cgroup is not None:
            self._cgroup.add(child.pid)
        try:
            create_time = psutil.Process(child.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0  # died instantly; the record still reports its exit code via Popen
        logger.info("bot %s: started pid %s (%s)", spec.bot_id, child.pid, spec.name)
        return ProcessRecord(
            bot_id=spec.bot_id,
            pid=child.pid,
            create_time=create_time,
            config_version=spec.config_version,
            name=spec.name,
            started_at=time.time(),
            log_path=str(log_path),
        ), child

    async def _terminate(self, rec: ProcessRecord, *, timeout_s: float) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; returns once the process is dead, raises
        ``RuntimeUnavailable`` when it is still alive 2 s after SIGKILL (it is not forgotten, and no
        other process is started for the bot)."""
        rec, alive = await self._refresh(rec)
        if not alive:
            return
        self._terminated.add(rec.pid)
        self._kill_group(rec, _signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if not (await self._refresh(rec))[1]:
                return
        logger.warning(
            "bot %s: pid %s ignored SIGTERM for %.1fs, killing", rec.bot_id, rec.pid, timeout_s
        )
        self._kill_group(rec, _signal.SIGKILL)
        for _ in range(100):
            if not (await self._refresh(rec))[1]:
                return
            await asyncio.sleep(0.02)
        raise RuntimeUnavailable(f"bot {rec.bot_id}: pid {rec.pid} is still alive after SIGKILL; "
                                 "it stays recorded and no other process is started for the bot")

    @staticmethod
    def _kill_group(rec: ProcessRecord, sig: _signal.Signals) -> None:
        try:
            # The bot leads its own session, so its pgid is its pid; identity was checked by the caller.
            os.killpg(rec.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise RuntimeUnavailable(f"bot {rec.bot_id}: cannot signal pid {rec.pid}: {exc}") from exc

    async def stop(self, bot_id: int, *, timeout_s: float = 10) -> None:
        """SIGTERM the bot's process group, SIGKILL after timeout_s; idempotent."""
        async with self._lock(bot_id):
            rec = self._records.get(bot_id)
            if rec is None:
                return
            await self._terminate(rec, timeout_s=timeout_s)

    async def remove(self, bot_id: int) -> None:
        """Stop the bot and forget its record; idempotent."""
        async with self._lock(bot_id):
            rec = self._records.get(bot_id)
            if rec is None:
                return
            await self._terminate(rec, timeout_s=self._replace_timeout_s)  # raises if it survives: kept
            self._records.pop(bot_id, None)
            await self._save()

    async def signal(self, bot_id: int, sig: str) -> None:
        """Send a signal (e.g. SIGUSR1) to the bot's main process (under the bot's lock: never to a process
        being replaced)."""
        signum = parse_signal(sig)
        async with self._lock(bot_id):
            rec = self._records.get(bot_id)
            if rec is None or not (await self._refresh(rec))[1]:
                raise WorkloadNotFound(f"bot {bot_id} has no running process")
            try:
                os.kill(rec.pid, signum)
            except ProcessLookupError as exc:
                raise WorkloadNotFound(f"bot {bot_id}: pid {rec.pid} is gone") from exc

    def _snapshot_now(self) -> dict[int, tuple[int, bool]]:
        """The poll's first snapshot, taken synchronously when ``events()`` is called (cheap: no reaping)."""
        return {bot_id: (rec.pid, self._liveness(rec, reap=False)[0]) for bot_id, rec in list(self._records.items())}

    async def _snapshot(self) -> dict[int, tuple[int, bool]]:
        return {rec.bot_id: (rec.pid, alive) for rec, alive in await self._refresh_many(list(self._records.values()))}

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Started/died/removed transitions, found by polling every poll_interval_s (the scan on a thread)."""
        # Snapshot now, not at the first iteration, so nothing between this call and the
        # consumer's first `anext` is missed.
        return self._poll_events(self._snapshot_now())

    async def _poll_events(self, last: dict[int, tuple[int, bool]]) -> AsyncIterator[RuntimeEvent]:
        while not self._closed.is_set():
            current = await self._snapshot()
            for event in _diff(last, current, self._terminated):
                yield event
            last = current
            try:
                await asyncio.wait_for(self._closed.wait(), timeout=self._poll_interval_s)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop event streams; bot processes keep running (a restarted manager adopts them)."""
        self._closed.set()


def _diff(last: dict[int, tuple[int, bool]], current: dict[int, tuple[int, bool]],
          terminated: set[int] | None = None) -> list[RuntimeEvent]:
    """Transitions between two snapshots; the exit of a pid in ``terminated`` (we stopped it) is "stopped"."""
    terminated = terminated if terminated is not None else set()
    events = []
    for bot_id, (pid, alive) in current.items():
        prev = last.get(bot_id)
        wid = f"pid:{pid}"
        if prev is None or prev[0] != pid:
            # A new pid that already died started and crashed between two polls: report the death
            # so the reconciler restarts it.
            events.append(RuntimeEvent(bot_id=bot_id, kind="started" if alive else "died", workload_id=wid))
        elif prev[1] and not alive:
            kind = "stopped" if pid in terminated else "died"
            terminated.discard(pid)
            events.append(RuntimeEvent(bot_id=bot_id, kind=kind, workload_id=wid))
    for bot_id, (pid, _alive) in last.items():
        if bot_id not in current:
            events.append(RuntimeEvent(bot_id=bot_id, kind="removed", workload_id=f"pid:{pid}"))
    return events
