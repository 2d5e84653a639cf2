"""Debian haproxy running the committed docker-socket-proxy config on a loopback port."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.infra.binaries import require_binary
from tests.infra.net import free_port, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = REPO_ROOT / "deploy" / "docker-socket-proxy" / "haproxy.cfg"

_BIND_RE = re.compile(r"^(\s*)bind\s+\S+.*$", re.MULTILINE)
_SERVER_RE = re.compile(r"^(\s*)server\s+dockersocket\s+\S+.*$", re.MULTILINE)


def render_config(text: str, *, port: int, socket_path: Path) -> str:
    """The committed config with its bind and server lines pointed at a test port and socket."""
    text, binds = _BIND_RE.subn(lambda m: f"{m.group(1)}bind 127.0.0.1:{port}", text)
    text, servers = _SERVER_RE.subn(lambda m: f"{m.group(1)}server dockersocket {socket_path}", text)
    if binds != 1 or servers != 1:
        raise ValueError(
            f"haproxy.cfg must have exactly one bind and one dockersocket server line "
            f"(found {binds} and {servers})"
        )
    return text


class SocketProxy:
    """haproxy in front of a dockerd socket; can be stopped and started again on the same port."""

    def __init__(self, *, socket_path: Path, work_dir: Path, config_path: Path = CONFIG_PATH) -> None:
        self.socket_path = Path(socket_path)
        self.work_dir = Path(work_dir)
        self.config_path = config_path
        self.port = free_port()
        self.rendered_path = self.work_dir / "haproxy.cfg"
        self.log_path = self.work_dir / "haproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL the manager uses (DOCKER_SOCKET_PROXY_URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the haproxy process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout_s: float = 15.0) -> None:
        """Validate the rendered config, start haproxy in the foreground, wait for /_ping through it."""
        haproxy = require_binary("haproxy", package="haproxy")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.rendered_path.write_text(
            render_config(self.config_path.read_text(), port=self.port, socket_path=self.socket_path)
        )
        check = subprocess.run(
            [haproxy, "-c", "-q", "-f", str(self.rendered_path)], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            pytest.fail(f"haproxy rejected {self.config_path}:\n{check.stdout}{check.stderr}", pytrace=False)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [haproxy, "-db", "-f", str(self.rendered_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            ok = wait_until(lambda: self.running and client.get("/_ping").text == "OK", timeout_s=timeout_s)
        if not ok:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            self.stop()
            pytest.fail(f"haproxy did not proxy /_ping within {timeout_s}s; log:\n{tail}", pytrace=False)

    def stop(self) -> None:
        """Terminate haproxy (a "proxy down" outage); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()
