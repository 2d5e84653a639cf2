"""Killed bot container → running again, through the reconciler, the Docker runtime and a real
dockerd behind the haproxy socket proxy (target ≤ 2 s; the reconciler reacts to Docker events).
Baseline in the same run: a plain `POST /containers/{id}/start` of a stopped container (what a
restart costs the engine itself).

    .venv/bin/python bench/reconcile_docker_restart.py [KILLS]     (root; needs ci/install-system-deps.sh)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import embedded_postgres, fresh_database, pct

from tests.infra.stack import docker_stack

KILLS = int(sys.argv[1]) if len(sys.argv) > 1 else 10


async def main(server_url: str) -> None:
    import httpx

    from gordon_manager.app import create_app
    from tests.conftest import make_settings

    db = await fresh_database(server_url)
    with docker_stack() as stack:
        raw = stack.raw
        data = Path(tempfile.mkdtemp(prefix="gm-bench-dr-"))
        settings = make_settings(db, data, reconcile_enabled=True, runtime="docker",
                                 docker_socket_proxy_url=stack.proxy_url, allowed_images="gordon-bot",
                                 bot_image=stack.image, bot_command="sleep 1000000", reconcile_interval_s=5.0,
                                 bot_network="none",  # busybox sleep: no network needed
                                 quarantine_failures=1000,
                                 # each kill is measured as the first failure of its window (no backoff)
                                 quarantine_window_s=0.5)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
                headers = {"X-Operator-Token": "test-operator-token-0123456789"}
                body = {"name": "bench-docker", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
                        "desiredState": "running"}
                bot_id = (await http.post("/bots", json=body, headers=headers)).json()["id"]
                filters = json.dumps({"label": [f"gordon.bot_id={bot_id}"]})

                def running() -> str | None:
                    for c in raw.get("/containers/json", params={"filters": filters}).json():
                        if c["State"] == "running":
                            return c["Id"]
                    return None

                while running() is None:
                    await asyncio.sleep(0.05)
                latencies, baseline = [], []
                for _ in range(KILLS):
                    cid = running()
                    t0 = time.monotonic()
                    raw.post(f"/containers/{cid}/kill")
                    while True:
                        await asyncio.sleep(0.01)
                        if running():
                            latencies.append(time.monotonic() - t0)
                            break
                    await asyncio.sleep(1.0)
                # baseline: the engine's own restart cost (stop, then time a start)
                cid = running()
                for _ in range(5):
                    raw.post(f"/containers/{cid}/kill")
                    await asyncio.sleep(0.3)
                    t0 = time.monotonic()
                    raw.post(f"/containers/{cid}/start")
                    baseline.append(time.monotonic() - t0)
                    await asyncio.sleep(0.5)
                await http.post(f"/bots/{bot_id}/stop", headers=headers)
        print(f"docker: killed container back up p50 {pct(latencies, 50):.3f} s, max {max(latencies):.3f} s "
              f"over {len(latencies)} kills (target <= 2 s: {'PASS' if max(latencies) <= 2 else 'FAIL'}); "
              f"engine start alone p50 {pct(baseline, 50):.3f} s (ratio {pct(latencies, 50) / pct(baseline, 50):.1f}x)")


if __name__ == "__main__":
    with embedded_postgres() as url:
        asyncio.run(main(url))
