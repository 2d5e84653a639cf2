"""A throwaway Debian dockerd for a test session, isolated from the host and from other daemons.

dockerd runs in its own network and mount namespaces (`unshare --net --mount`): swarm's
docker_gwbridge, the ingress sandbox and the overlay mounts then live and die with the daemon
instead of leaking onto the host, and two sessions never collide on interface names or port 2377.
The API is reached through a unix socket in the temp dir, which both namespaces can see.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.infra.binaries import require_binary, require_root
from tests.infra.net import wait_until

logger = logging.getLogger(__name__)

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerDaemon:
    """Start/stop one dockerd with its own socket, data-root, exec-root and pidfile under `root`."""

    def __init__(self, *, root: Path) -> None:
        self.root = Path(root)
        self.socket_path = self.root / "docker.sock"
        self.log_path = self.root / "dockerd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The daemon's raw socket URL (the "outside world" in tests; the manager never uses it)."""
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int:
        """pid of the daemon (its network namespace is /proc/<pid>/ns/net: tests/infra/netns.py)."""
        assert self._proc is not None, "dockerd is not running"
        return self._proc.pid

    def client(self, *, timeout_s: float = 30.0) -> httpx.Client:
        """A sync httpx client on the raw socket."""
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket_path)),
            base_url="http://docker",
            timeout=timeout_s,
        )

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Spawn dockerd and wait until /_ping answers; pytest.fail with its log otherwise."""
        require_root("dockerd")
        dockerd = require_binary("dockerd", package="docker.io")
        require_binary("containerd", package="docker.io")
        require_binary("runc", package="docker.io")
        busybox = require_binary("busybox", package="busybox-static")
        unshare = require_binary("unshare", package="util-linux")
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            dockerd,
            f"--host={self.url}",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            "--shutdown-timeout=2",
            "--log-level=warn",
        ]
        # Loopback must be up inside the fresh namespace for swarm's 127.0.0.1 listener.
        script = f"{busybox} ip link set lo up && exec " + " ".join(f"'{a}'" for a in args)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [unshare, "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PATH": _PATH},
                start_new_session=True,
            )
        with self.client(timeout_s=2.0) as client:
            ok = wait_until(
                lambda: (
                    self._proc is not None and self._proc.poll() is None and client.get("/_ping").text == "OK"
                ),
                timeout_s=timeout_s,
                interval_s=0.1,
            )
        if not ok:
            log_tail = self.log_tail()
            self.stop()
            pytest.fail(
                f"dockerd did not answer /_ping within {timeout_s}s; log tail:\n{log_tail}", pytrace=False
            )

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the daemon log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def _quiesce(self) -> None:
        # Removing containers and leaving swarm first keeps shutdown to about a second.
        try:
            with self.client(timeout_s=10.0) as client:
                info = client.get("/info").json()
                if (info.get("Swarm") or {}).get("LocalNodeState") == "active":
                    client.post("/swarm/leave", params={"force": "1"})
                for item in client.get("/containers/json", params={"all": "1"}).json():
                    client.delete(f"/containers/{item['Id']}", params={"force": "1", "v": "1"})
        except (httpx.HTTPError, ValueError):
            pass

    def stop(self) -> None:
        """Stop the daemon, kill anything it left behind, delete `root`; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._quiesce()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                logger.warning("dockerd (pid %s) ignored SIGTERM; killing its process group", proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self._kill_leftovers()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        # containerd and its shims name our temp root on their command line; end exactly those pids.
        marker = str(self.root)
        leftovers = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(marker in part for part in (p.info["cmdline"] or [])):
                    leftovers.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for p in leftovers:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=5)
        if leftovers:
            time.sleep(0.1)
