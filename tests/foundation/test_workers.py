"""GORDON_MANAGER_WORKERS: several HTTP workers, exactly one running the background services."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.foundation.test_cli import env_for, free_port, stop, wait_healthy


def test_two_workers_share_the_port_and_elect_one_background_worker(tmp_path):
    port = free_port()
    env = env_for(tmp_path / "data", port, GORDON_MANAGER_WORKERS="2")
    proc = subprocess.Popen([sys.executable, "-m", "gordon_manager.cli", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        seen: dict[int, bool] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            # new connections land on either worker
            with httpx.Client() as http:
                worker = http.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["checks"]["worker"]
            seen[worker["pid"]] = worker["background"]
        assert len(seen) == 2, seen
        assert sorted(seen.values()) == [False, True], seen
        assert (tmp_path / "data" / "background.lock").exists()
    finally:
        stop(proc)
