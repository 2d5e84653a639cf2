"""Benchmark: a 1M-bar backtest through the API, from POST /backtests to status done in Postgres.

A real `gordon-manager serve` (temp GORDON_MANAGER_DATA_DIR, embedded PostgreSQL, loopback) over
1,000,000 synthetic 1-minute bars imported with `gordon-manager data synth`. SMA 10/30, fee 0.1%.
The clock runs from just before the POST until GET /runs/{id} reports 'done' (results committed:
1M equity points, every round trip, stats). The breakdown comes from the run's own timings
(``stats.timings``: load bars, engine, write equity, write round trips); "other" is the rest
(dispatch, worker start, claim, commit, polling). Run 1 pays for starting the worker pool; run 2
reuses it.

Run: .venv/bin/python bench/backtest_api.py [--bars 1000000] [--runs 2] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

TARGET_S = 3.0  # issue 19
TOKEN = "bench-operator-token"
GM = [sys.executable, "-m", "gordon_manager.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("serve did not become healthy in time")


def one_run(http: httpx.Client, body: dict, timeout: float = 120.0) -> tuple[float, dict]:
    started = time.perf_counter()
    response = http.post("/backtests", json=body)
    response.raise_for_status()
    run_id = response.json()["id"]
    deadline = started + timeout
    while True:
        run = http.get(f"/runs/{run_id}").json()
        if run["status"] in ("done", "failed", "cancelled"):
            elapsed = time.perf_counter() - started
            break
        if time.perf_counter() > deadline:
            raise SystemExit(f"run {run_id} not finished after {timeout}s: {run['status']}")
        time.sleep(0.01)
    if run["status"] != "done":
        raise SystemExit(f"run {run_id} {run['status']}: {run.get('error')}")
    return elapsed, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="gm-bench-bt-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GORDON_", "DOCKER_SOCKET"))}
    env.update({"GORDON_MANAGER_DATA_DIR": str(root / "data"), "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{port}",
                "GORDON_MANAGER_OPERATOR_TOKEN": TOKEN, "GORDON_MANAGER_LOG_LEVEL": "WARNING",
                "GORDON_MANAGER_RECONCILE_ENABLED": "false"})
    serve = None
    try:
        started = time.perf_counter()
        subprocess.run([*GM, "data", "synth", "--symbol", "BTCUSDT", "--interval", "1m", "--bars", str(args.bars),
                        "--seed", str(args.seed)], env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)
        synth_s = time.perf_counter() - started

        serve = subprocess.Popen([*GM, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, serve)
        step_ms = 60_000
        end_ms = 1_704_067_200_000 + args.bars * step_ms
        body = {"strategy": "sma_crossover", "params": {"fast": 10, "slow": 30}, "symbol": "BTCUSDT",
                "interval": "1m", "from": "2024-01-01T00:00:00Z",
                "to": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_ms / 1000)),
                "execution": {"takerFeeBps": "10", "makerFeeBps": "10", "slippageBps": "0"}}

        print(f"workload   : sma_crossover 10/30 over {args.bars:,} synthetic 1m bars (seed {args.seed}), fee 0.1%,"
              f" via POST /backtests on a real `gordon-manager serve` (embedded PostgreSQL, loopback)")
        print(f"setup      : `data synth` of {args.bars:,} bars took {synth_s:.2f} s")
        results = []
        with httpx.Client(base_url=base, headers={"X-Operator-Token": TOKEN}, timeout=30.0) as http:
            for i in range(args.runs):
                elapsed, run = one_run(http, body)
                results.append(elapsed)
                s, t = run["stats"], run["stats"]["timings"]
                phases = t["loadBarsS"] + t["engineS"] + t["writeEquityS"] + t["writeRoundtripsS"]
                label = "cold pool" if i == 0 else "warm pool"
                print(f"run {i + 1} ({label}): POST -> done {elapsed:6.2f} s | load bars {t['loadBarsS']:.2f} s"
                      f" | engine {t['engineS']:.2f} s ({t['engineBarsPerS']:,.0f} bars/s)"
                      f" | write equity {t['writeEquityS']:.2f} s | write round trips {t['writeRoundtripsS']:.2f} s"
                      f" | other {elapsed - phases:.2f} s")
                points = (run.get("equity") or {}).get("points")
                print(f"             {s['bars']:,} bars, {points:,} equity points, {s['tradeCount']:,} round trips,"
                      f" {s['fillCount']:,} fills, total return {s['totalReturn']:.4f}, fees {s['totalFees']}")
        worst = max(results)
        verdict = "PASS" if worst < TARGET_S else "FAIL"
        print(f"target POST -> done < {TARGET_S:.0f} s for every run (worst {worst:.2f} s): {verdict}")
    finally:
        if serve is not None and serve.poll() is None:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        if args.keep:
            print(f"data dir kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
