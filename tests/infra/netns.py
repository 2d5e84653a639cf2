"""Reaching across the test dockerd's network namespace (tests/infra/dockerd.py runs it in its own).

A bot container sits on a bridge network inside the daemon's namespace; the test's PostgreSQL and
NATS listen on the host's loopback (or a unix socket), which that namespace cannot see. Rather than
touching the host's routing or firewall, ``socat`` relays bridge the two through unix sockets (a file
both namespaces see):

* ``forward_in``: a listener inside the daemon's namespace (every interface, so the bridge gateway
  the bot is given) → the host's TCP port or unix socket (PostgreSQL, NATS).
* ``expose``: a host unix socket → a TCP port inside the namespace (the test's Prometheus API).
* ``spawn``: a program (Prometheus) run inside the namespace with ``nsenter --net``.

What the bot sees is what it would see in production: a database and a bus at an address on its
network, never the host's loopback or network namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.infra.binaries import require_binary
from tests.infra.net import wait_until


class Netns:
    """Relays and programs in one network namespace (``/proc/<pid>/ns/net``); ``close()`` ends them."""

    def __init__(self, *, pid: int, work_dir: Path) -> None:
        self.ns_path = f"/proc/{pid}/ns/net"
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._socat = require_binary("socat", package="socat")
        self._nsenter = require_binary("nsenter", package="util-linux")
        self._procs: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def _popen(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.work_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        self._procs.append(proc)
        return proc

    def _inside(self, args: list[str]) -> list[str]:
        return [self._nsenter, f"--net={self.ns_path}", *args]

    def spawn(self, args: list[str], *, name: str) -> subprocess.Popen[bytes]:
        """Run ``args`` inside the namespace (ended by close())."""
        return self._popen(self._inside(args), name)

    def run(self, args: list[str], *, timeout_s: float = 10) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace."""
        return subprocess.run(self._inside(args), capture_output=True, text=True, timeout=timeout_s)

    def _unix(self, name: str) -> Path:
        self._n += 1
        return self.work_dir / f"{name}-{self._n}.sock"

    def forward_in(self, *, port: int, target: str, name: str) -> None:
        """Listen on ``port`` (all interfaces) inside the namespace; relay to ``target`` on the host:
        ``tcp:HOST:PORT`` or ``unix:PATH``."""
        kind, _, where = target.partition(":")
        if kind == "tcp":
            sock = self._unix(name)
            self._popen([self._socat, f"UNIX-LISTEN:{sock},fork,mode=600", f"TCP:{where}"], f"{name}-host")
            if not wait_until(sock.exists, timeout_s=10):
                pytest.fail(f"relay {name}: {sock} did not appear", pytrace=False)
            upstream = f"UNIX-CONNECT:{sock}"
        elif kind == "unix":
            upstream = f"UNIX-CONNECT:{where}"
        else:
            raise ValueError(f"target must be tcp:HOST:PORT or unix:PATH, got {target!r}")
        proc = self.spawn([self._socat, f"TCP-LISTEN:{port},fork,reuseaddr", upstream], name=f"{name}-netns")
        if not wait_until(lambda: proc.poll() is None and self._listening(port), timeout_s=10):
            pytest.fail(f"relay {name}: nothing listens on port {port} in the daemon's namespace "
                        f"(log: {(self.work_dir / f'{name}-netns.log').read_text(errors='replace')[-500:]})",
                        pytrace=False)

    def _listening(self, port: int) -> bool:
        # /proc/net/tcp of a process in the namespace lists its sockets; 0A = LISTEN.
        pid = self._procs[-1].pid
        try:
            table = Path(f"/proc/{pid}/net/tcp").read_text()
        except OSError:
            return False
        return any(line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
                   for line in table.splitlines()[1:])

    def expose(self, *, port: int, name: str, host: str = "127.0.0.1") -> Path:
        """A host unix socket relayed to ``host``:``port`` inside the namespace (its loopback, or a
        container's address); returns its path."""
        sock = self._unix(name)
        self.spawn([self._socat, f"UNIX-LISTEN:{sock},fork,mode=600", f"TCP:{host}:{port}"], name=f"{name}-expose")
        if not wait_until(sock.exists, timeout_s=10):
            pytest.fail(f"relay {name}: {sock} did not appear", pytrace=False)
        return sock

    def close(self) -> None:
        """End every relay and program this object started (by pid, never by name)."""
        procs, self._procs = self._procs, []
        for proc in procs:
            # Each leads its own process group (start_new_session): socat's forked connection
            # handlers go with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
