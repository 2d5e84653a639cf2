"""Benchmark: the swap gap of a green/blue deploy, against a real `gordon-manager serve`.

A live bot (process runtime, real `gordon-manager bot`, replaying synthetic klines at 50 bars/s)
gets ROUNDS deploys of an identical candidate (compare window 60 bars, threshold 1.0). Each deploy
shadows, compares, swaps in one transaction; the reconciler (woken by the NOTIFY of the swap,
timer at the production default of 5 s) replaces the live workload: the process runtime stops the
old process, then spawns the new one. Measured per round, all on this host's clock:

- process gap: old bot's run finished (it stopped trading) → new bot process spawned (psutil);
- trading gap: old run's last equity point → new run's first equity point (a 5 ms poller);
- swap → trading: the deploy's promotion commit → the new run's first equity point.

Target: trading gap ≤ 1 reconcile interval.

    .venv/bin/python bench/deploy_swap.py [--rounds 3] [--reconcile-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from _common import embedded_postgres, free_port, fresh_database

from gordon_manager.db.connect import connect
from tests.botrunner.conftest import insert_klines, synth
from tests.deploys.sampler import bot_processes

TOKEN = "bench-token-0123456789abcdef"
HEADERS = {"X-Operator-Token": TOKEN}
SYMBOL = "SWAPBENCH"


async def wait(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError("condition not met")


async def current_run(admin, bot_id: int, spec_version: int):
    return await admin.fetchrow("SELECT id, started_at, finished_at FROM trading.runs WHERE bot_id = $1"
                                " AND (config->>'specVersion')::int = $2 ORDER BY id DESC LIMIT 1", bot_id, spec_version)


def spawn_time(log: Path, spec: int) -> float:
    """When the process runtime spawned the bot at config version ``spec`` (its log line)."""
    marker = f" start config v{spec}"
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("--- ") and line.endswith(marker):
            return datetime.fromisoformat(line[4:-len(marker)]).timestamp()
    raise AssertionError(f"no spawn of v{spec} in {log}")


async def one_round(http: httpx.AsyncClient, admin, db_name: str, log_dir: Path, live: int, spec: int) -> dict:
    old_run = await wait(lambda: current_run(admin, live, spec), 60)
    last_old_change, last_old_n = None, -1
    first_new = None
    response = await http.post(f"/bots/{live}/deploy/promote", headers=HEADERS,
                               json={"compareWindow": 60, "matchThreshold": 1.0})
    assert response.status_code == 202, response.text
    deploy_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while first_new is None and time.monotonic() < deadline:
        row = await admin.fetchrow(
            "SELECT (SELECT count(*) FROM trading.equity_points WHERE run_id = $1) AS old_n,"
            " (SELECT count(*) FROM trading.equity_points WHERE run_id = (SELECT id FROM trading.runs"
            "   WHERE bot_id = $2 AND (config->>'specVersion')::int = $3 ORDER BY id DESC LIMIT 1)) AS new_n",
            old_run["id"], live, spec + 1)
        now = time.time()
        if row["old_n"] != last_old_n:
            last_old_n, last_old_change = row["old_n"], now
        if row["new_n"]:
            first_new = now
        await asyncio.sleep(0.005)
    deploy = await admin.fetchrow("SELECT state, finished_at, bars_compared FROM trading.bot_deploys WHERE id = $1",
                                  deploy_id)
    assert deploy["state"] == "promoted", deploy
    old = await admin.fetchrow("SELECT finished_at FROM trading.runs WHERE id = $1", old_run["id"])
    procs = bot_processes(db_name).get(live, [])
    assert len(procs) == 1, procs
    # The process runtime stamps its log right before it spawns (psutil's create_time is only
    # as precise as the kernel's boot time: 1 s).
    spawned = spawn_time(log_dir / f"gordon-bot-{live}.log", spec + 1)
    return {"process_gap": spawned - old["finished_at"].timestamp(),
            "trading_gap": first_new - last_old_change,
            "swap_to_trading": first_new - deploy["finished_at"].timestamp(),
            "compared": deploy["bars_compared"]}


async def main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gm-bench-swap-"))
    with embedded_postgres() as server_url:
        db = await fresh_database(server_url)
        await insert_klines(db.admin_url, synth(20_000, seed=9), symbol=SYMBOL)
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GORDON_")},
               "GORDON_DATABASE_URL": db.manager_url, "GORDON_MANAGER_DATA_DIR": str(tmp / "data"),
               "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{port}", "GORDON_MANAGER_OPERATOR_TOKEN": TOKEN,
               "GORDON_MANAGER_LOG_LEVEL": "WARNING",
               "GORDON_MANAGER_RECONCILE_INTERVAL_S": str(args.reconcile_interval)}
        server = subprocess.Popen([sys.executable, "-m", "gordon_manager.cli", "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = await connect(db.admin_url)
        live = None
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                async def healthy():
                    try:
                        return (await http.get("/healthz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait(healthy, 60)
                body = {"name": "swap-bench", "strategy": "sma_crossover", "symbol": SYMBOL, "interval": "1m",
                        "params": {"fast": 3, "slow": 8}, "image": "gordon-bot:1", "desiredState": "running",
                        "labels": {"replay.speed": "50"}}
                created = await http.post("/bots", json=body, headers=HEADERS)
                live = created.json()["id"]
                results = []
                for spec in range(1, args.rounds + 1):
                    async def running(spec=spec):
                        b = (await http.get(f"/bots/{live}")).json()
                        st = b.get("status") or {}
                        return st.get("observedState") == "running" and st.get("observedVersion") == spec
                    await wait(running, 60)
                    await asyncio.sleep(1.0)  # let the live run trade a while
                    result = await one_round(http, admin, db.name, tmp / 'data' / 'process-runtime' / 'logs', live, spec)
                    results.append(result)
                    print(f"round {spec}: compared {result['compared']} bars; process gap (old run stopped → new "
                          f"process spawned) {result['process_gap'] * 1000:.0f} ms; trading gap (last old equity "
                          f"point → first new one) {result['trading_gap'] * 1000:.0f} ms; swap commit → new bot "
                          f"trading {result['swap_to_trading'] * 1000:.0f} ms")
                worst = max(r["trading_gap"] for r in results)
                print(f"max trading gap {worst * 1000:.0f} ms vs reconcile interval {args.reconcile_interval * 1000:.0f}"
                      f" ms → {'OK' if worst <= args.reconcile_interval else 'ABOVE TARGET'}")
        finally:
            await admin.close()
            server.terminate()
            server.wait(timeout=30)
            for procs in bot_processes(db.name).values():  # bots outlive managers: end ours
                for pid, _version in procs:
                    psutil.Process(pid).kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reconcile-interval", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
