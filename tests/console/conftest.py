"""The console's test fixtures: its build, a real `gordon-manager serve` on the embedded database, Chromium.

The console is built with `make console` (npm ci from console/package-lock.json when it changed, then
`npm run build` when a source is newer than console/dist), under a file lock so that concurrent test
processes build once. Node.js/npm or Chromium missing is a failure with the install hint, never a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.infra.net import free_port

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
DIST = CONSOLE / "dist"
ARTIFACTS = ROOT / "artifacts" / "console"
OPERATOR_TOKEN = "console-test-operator-token-0123456789"
GM = [sys.executable, "-m", "gordon_manager.cli"]
NODE_HINT = ("Node.js ≥ 20 and npm build the console: `apt-get install nodejs npm` (ci/install-system-deps.sh does), "
             "then `make console`")


def build_console() -> Path:
    """console/dist, built (or rebuilt when stale) by `make console`."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(NODE_HINT)
    with open(CONSOLE / ".build.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        done = subprocess.run(["make", "-s", "console"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"`make console` failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}\n{NODE_HINT}")
    return DIST


@pytest.fixture(scope="session")
def console_dist() -> Path:
    return build_console()


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    data_dir: Path
    proc: subprocess.Popen


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GORDON_", "DOCKER_SOCKET"))}
    env.update({"GORDON_MANAGER_DATA_DIR": str(data_dir), "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{port}",
                "GORDON_MANAGER_LOG_LEVEL": "WARNING", "GORDON_MANAGER_OPERATOR_TOKEN": OPERATOR_TOKEN,
                "GORDON_MANAGER_CONSOLE_DIST": str(DIST), "GORDON_MANAGER_RECONCILE_INTERVAL_S": "1"})
    return env


@pytest.fixture(scope="session")
def served(console_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`gordon-manager serve` on the embedded database, with 5,000 synthetic BTCUSDT 1m bars (seed 1)."""
    data_dir = tmp_path_factory.mktemp("console") / "gm-data"
    port = free_port()
    env = _env(data_dir, port)
    synth = subprocess.run([*GM, "data", "synth", "--symbol", "BTCUSDT", "--interval", "1m", "--bars", "5000", "--seed", "1"],
                           env=env, capture_output=True, text=True, timeout=180)
    assert synth.returncode == 0, synth.stderr
    log = open(data_dir.parent / "serve.log", "w")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([*GM, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited: {(data_dir.parent / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not become ready within 90 s")
            time.sleep(0.1)
        yield Served(url=url, port=port, data_dir=data_dir, proc=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
