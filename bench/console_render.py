"""The console's performance figures, measured in Chromium against a real `gordon-manager serve` (embedded database).

1. Initial JS: the gzipped size of the scripts and stylesheet index.html loads (the lazy chunks — other pages,
   lightweight-charts — excluded), from console/dist.
2. First load to interactive on localhost: a fresh browser context (cold cache) opens `/` with 1,000 bots;
   the Navigation Timing API's domInteractive / domContentLoadedEventEnd, and the console's own
   `fleet-ready` mark (the first commit that shows the loaded fleet: /bots and /portfolio read, rows drawn).
3. One /ws batch for a 1,000-bot fleet: one SQL statement changes all 1,000 bots' `trading.bot_status`
   rows; the outbox sends the events over /ws; the console's hub hands them over once per animation frame
   and the fleet page records, per batch, the time from hand-over to its commit (performance.measure
   `fleet-batch-render`, window.__gordonFleetRenders). Reported: per round, the events it took and the
   worst batch; overall median and worst of the rounds.

Run: `.venv/bin/python bench/console_render.py [--rounds 5] [--bots 1000]` (builds the console with `make console`).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "console" / "dist"
TOKEN = "console-bench-operator-token-0123456789"


def initial_js_gzip() -> dict[str, int]:
    html = (DIST / "index.html").read_text()
    names = re.findall(r'(?:src|href)="/ui/(assets/[^"]+\.(?:js|css))"', html)
    return {name: len(gzip.compress((DIST / name).read_bytes(), 9)) for name in names}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def create_bots(url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-Operator-Token": TOKEN}, timeout=30) as http:
        semaphore = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with semaphore:
                r = await http.post("/bots", json={"name": f"bench-{i:04d}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
                                                   "interval": "1m", "params": {"fast": 10, "slow": 30}})
                assert r.status_code == 201, r.text

        await asyncio.gather(*(one(i) for i in range(count)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    subprocess.run(["make", "-s", "console"], cwd=ROOT, check=True)

    sizes = initial_js_gzip()
    print(f"initial JS+CSS gzipped: {sum(sizes.values()) / 1024:.1f} kB  " + ", ".join(f"{n}: {s / 1024:.1f} kB" for n, s in sizes.items()))

    tmp = Path(tempfile.mkdtemp(prefix="gm-console-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GORDON_")}
    env.update({"GORDON_MANAGER_DATA_DIR": str(tmp / "data"), "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{port}",
                "GORDON_MANAGER_OPERATOR_TOKEN": TOKEN, "GORDON_MANAGER_LOG_LEVEL": "WARNING",
                "GORDON_MANAGER_RECONCILE_ENABLED": "false"})
    proc = subprocess.Popen([sys.executable, "-m", "gordon_manager.cli", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(900):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        started = time.monotonic()
        await create_bots(url, args.bots)
        print(f"{args.bots} bots created in {time.monotonic() - started:.1f} s")
        db = await asyncpg.connect(f"postgresql://postgres@/gordon?host={tmp / 'data' / 'pgdata'}")

        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                               args=["--no-sandbox"])
            loads = []
            for _ in range(args.loads):
                context = await browser.new_context(viewport={"width": 1400, "height": 900})
                page = await context.new_page()
                await page.goto(url + "/")
                await page.wait_for_selector(f"[data-testid=fleet-count]:text-matches('^{args.bots} of')")
                timing = await page.evaluate("""() => {
                  const nav = performance.getEntriesByType('navigation')[0];
                  const ready = performance.getEntriesByName('fleet-ready')[0];
                  return {interactive: nav.domInteractive, dcl: nav.domContentLoadedEventEnd, ready: ready ? ready.startTime : null};
                }""")
                loads.append(timing)
                await context.close()
            ready = [t["ready"] for t in loads]
            print(f"first load ({args.loads} cold loads, {args.bots} bots): domInteractive median "
                  f"{statistics.median(t['interactive'] for t in loads):.0f} ms, DOMContentLoaded median "
                  f"{statistics.median(t['dcl'] for t in loads):.0f} ms, fleet-ready median {statistics.median(ready):.0f} ms, worst {max(ready):.0f} ms")

            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            await page.goto(url + "/")
            await page.wait_for_selector("[data-testid=connection][data-state=live]")
            await page.wait_for_selector(f"[data-testid=fleet-count]:text-matches('^{args.bots} of')")
            worst_per_round = []
            all_batches = []
            for round_ in range(args.rounds):
                state = "running" if round_ % 2 == 0 else "paused"
                await page.evaluate("window.__gordonFleetRenders = []")
                await db.execute(
                    "INSERT INTO trading.bot_status (bot_id, observed_state, restarts, updated_at) "
                    "SELECT id, $1, 0, now() FROM trading.bot_configs WHERE deleted_at IS NULL "
                    "ON CONFLICT (bot_id) DO UPDATE SET observed_state = EXCLUDED.observed_state, "
                    "restarts = trading.bot_status.restarts + 1, updated_at = now()", state)
                await page.wait_for_selector(f"[data-testid=fleet-count] + span:text-matches('^{args.bots} {state}$')", timeout=30_000)
                await page.wait_for_timeout(300)
                renders = await page.evaluate("window.__gordonFleetRenders")
                events = sum(r["events"] for r in renders)
                worst = max(r["ms"] for r in renders)
                worst_per_round.append(worst)
                all_batches.extend(r["ms"] for r in renders)
                print(f"round {round_ + 1}: {events} events in {len(renders)} batch(es), render ms "
                      + ", ".join(f"{r['ms']:.1f}" for r in renders))
            print(f"1,000-bot /ws batch render: median {statistics.median(all_batches):.1f} ms, worst {max(all_batches):.1f} ms "
                  f"over {len(all_batches)} batches in {args.rounds} rounds (median of the rounds' worst {statistics.median(worst_per_round):.1f} ms)")
            if errors:
                print("console errors:", errors)
            await browser.close()
        await db.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
