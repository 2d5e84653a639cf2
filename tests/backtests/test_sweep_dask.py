"""Sweeps on a real Dask cluster: a scheduler and two workers started here as subprocesses on loopback
(`dask scheduler`, `dask worker --nworkers 1 --nthreads 1`), waited on with ``wait_for_workers``.

The workers count what they received (``sweep_cluster_worker.received``, read with ``client.run``): the trials ran
there, and each worker unpickled the bars once per sweep, not once per chunk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gordon_manager.backtests import sweep, sweep_cluster, sweep_cluster_worker, sweep_service
from gordon_manager.backtests.job import runner_identity
from gordon_manager.backtests.sweep_schemas import SweepCreate
from tests.backtests.test_sweeps import CONFIG, big_sweep, sweep_body, trials_under_way, wait_sweep
from tests.backtests.test_worker import cli_env  # noqa: F401
from tests.conftest import make_settings, wait_for
from tests.infra.binaries import require_dask
from tests.infra.net import free_port
from tests.marketdata.fixtures import iso, kadmin, kline_db  # noqa: F401

WORKERS = 2


@dataclass
class Cluster:
    address: str
    client: object  # distributed.Client
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]
    add_worker: Callable[[], subprocess.Popen]  # one more worker, registered when it returns

    def received(self) -> dict[str, dict[str, int]]:
        return self.client.run(sweep_cluster_worker.received)

    def reset(self) -> None:
        self.client.run(sweep_cluster_worker.reset_received)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def dask_cluster(logs: Path, workers: int) -> Iterator[Cluster]:
    """A Dask scheduler and ``workers`` single-threaded workers (subprocesses) on 127.0.0.1, ready: the
    workers registered (``wait_for_workers``); stopped (SIGTERM, then SIGKILL after 30 s) at exit."""
    from distributed import Client

    dask = require_dask()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    started: list[subprocess.Popen] = []
    client = None

    def spawn(name: str, *args: str) -> subprocess.Popen:
        with (logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        processes.append(process)
        return process

    def spawn_worker() -> subprocess.Popen:
        worker = spawn(f"worker{len(started)}", "worker", address, "--nworkers", "1", "--nthreads", "1", "--host",
                       "127.0.0.1", "--no-dashboard")
        started.append(worker)
        return worker

    def add_worker() -> subprocess.Popen:
        worker = spawn_worker()
        client.wait_for_workers(len(started), timeout=120)
        return worker

    try:
        scheduler = spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        for _ in range(workers):
            spawn_worker()
        client = Client(address, timeout=60, set_as_default=False)  # retries until the scheduler listens
        if workers:
            client.wait_for_workers(workers, timeout=120)
        yield Cluster(address=address, client=client, scheduler=scheduler, workers=started, add_worker=add_worker)
    except Exception:
        for path in sorted(logs.iterdir()):
            sys.stderr.write(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        if client is not None:
            client.close(timeout=5)
        for process in reversed(processes):  # the workers, then the scheduler
            _stop(process)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """The module's cluster: a scheduler and ``WORKERS`` workers."""
    with dask_cluster(tmp_path_factory.mktemp("dask"), WORKERS) as running:
        yield running


@pytest.fixture
async def dclient(kline_db, tmp_path, cluster):  # noqa: F811
    """An httpx client on an app whose sweeps run on ``cluster``."""
    import httpx

    from gordon_manager.app import create_app

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    application = create_app(make_settings(kline_db.db, data_dir, sweep_dask_address=cluster.address))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http


def test_the_pool_ships_the_bars_once_per_worker_and_matches_the_local_pool(kline_db, cluster):  # noqa: F811
    bars = kline_db.series.slice(0, 3000)
    trials, _ = sweep.grid_trials(sweep.get_strategy("sma_crossover"), {"fast": [3, 5, 10, 20],
                                                                        "slow": [30, 40, 60, 80, 100]})
    indexed = list(enumerate(trials))
    cluster.reset()
    with sweep_cluster.open_pool(bars, "sma_crossover", CONFIG, workers=0, dask_address=cluster.address) as pool:
        assert isinstance(pool, sweep_cluster.DaskTrialPool) and pool.workers == WORKERS
        assert pool.chunk_size(20) == 2 and pool.chunk_size(10_000) == 64
        futures = [pool.submit(indexed[i:i + 2]) for i in range(0, len(indexed), 2)]
        remote = [o for f in futures for o in f.result(timeout=120)]
    local = sweep.TrialPool(bars, "sma_crossover", CONFIG, workers=0).submit(indexed).result()
    assert remote == local and len(remote) == 20
    received = cluster.received()
    assert len(received) == WORKERS
    # Ten chunks of two trials, each carrying only (n, params): the bars were unpickled once per worker.
    assert {w: r["cargo"] for w, r in received.items()} == {w: 1 for w in received}
    assert sum(r["chunks"] for r in received.values()) == 10
    assert sum(r["trials"] for r in received.values()) == 20
    assert isinstance(sweep_cluster.open_pool(bars, "sma_crossover", CONFIG, workers=0), sweep.TrialPool)


async def test_an_api_sweep_runs_on_the_cluster_like_on_the_local_pool(dclient, kadmin, kline_db, cluster,  # noqa: F811
                                                                         operator_headers):
    body = sweep_body(kline_db, grid={"fast": [3, 5, 8, 10, 20, 40], "slow": [20, 30, 60, 80, 120]})
    await asyncio.to_thread(cluster.reset)
    response = await dclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    total = response.json()["trialsTotal"]
    row = await wait_sweep(kadmin, sweep_id)
    assert row["status"] == "done", row["error"]
    received = await asyncio.to_thread(cluster.received)
    # Every trial ran on a cluster worker; each worker got the bars once for the whole sweep.
    assert sum(r["trials"] for r in received.values()) == total
    assert all(r["cargo"] == 1 for r in received.values()), received
    assert sum(r["chunks"] for r in received.values()) > len(received)

    # The same sweep on the local pool (one spawn worker): the same trials, bit for bit.
    local, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(body), actor="test",
                                                runner="cli")
    assert await sweep_service.execute_sweep(kadmin, sweep_id=local["id"], owner=runner_identity("cli"),
                                             workers=1) == "done"
    query = ("SELECT n, params, stats, value, feasible, error FROM trading.backtest_sweep_trials "
             "WHERE sweep_id = $1 ORDER BY n")
    on_cluster = [dict(r) for r in await kadmin.fetch(query, sweep_id)]
    on_pool = [dict(r) for r in await kadmin.fetch(query, local["id"])]
    assert len(on_cluster) == total and on_cluster == on_pool
    detail = (await dclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    assert detail["trialsDone"] == total and detail["best"] is not None


async def test_a_walk_forward_runs_its_folds_on_the_cluster_too(dclient, kadmin, kline_db, cluster,  # noqa: F811
                                                                 operator_headers):
    body = sweep_body(kline_db, grid={"fast": [3, 5, 8], "slow": [20, 30]},
                      walkForward={"folds": 2, "mode": "rolling", "testFraction": 0.3})
    await asyncio.to_thread(cluster.reset)
    response = await dclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id, total = response.json()["id"], response.json()["trialsTotal"]
    row = await wait_sweep(kadmin, sweep_id)
    assert row["status"] == "done", row["error"]
    received = await asyncio.to_thread(cluster.received)
    # the whole-range trials and each fold's train trials, all on cluster workers
    assert sum(r["trials"] for r in received.values()) == total * 3
    detail = (await dclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    assert [f["done"] for f in detail["folds"]] == [True, True]
    assert detail["degradation"]["foldsDone"] == 2


async def _idle(cluster: Cluster, timeout: float = 30.0) -> None:
    """The cluster runs no task any more (the released chunks stopped between two trials)."""
    async def idle():
        processing = await asyncio.to_thread(cluster.client.processing)
        return not any(processing.values())

    await wait_for(idle, timeout=timeout, interval=0.1)


async def test_cancel_stops_the_chunks_on_the_cluster_and_keeps_the_finished_trials(  # noqa: F811
        dclient, kadmin, kline_db, cluster, operator_headers):
    response = await dclient.post("/backtests/sweeps", json=big_sweep(kline_db), headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    await trials_under_way(kadmin, sweep_id)
    cancel = await dclient.post(f"/backtests/sweeps/{sweep_id}/cancel", headers=operator_headers)
    assert cancel.status_code == 202, cancel.text
    started = time.monotonic()
    row = await wait_sweep(kadmin, sweep_id, timeout=60)
    assert row["status"] == "cancelled" and 0 < row["trials_done"] < row["trials_total"] == 200
    assert time.monotonic() - started < 10
    stored = await kadmin.fetchval("SELECT count(*) FROM trading.backtest_sweep_trials WHERE sweep_id = $1 "
                                   "AND stats IS NOT NULL", sweep_id)
    assert stored == row["trials_done"]
    await _idle(cluster)  # the chunks in flight were released, not run to their end


async def test_a_stopping_manager_fails_its_sweep_on_the_cluster(kadmin, kline_db, cluster):  # noqa: F811
    from gordon_manager.db.connect import create_pool

    row, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(big_sweep(kline_db)),
                                              actor="test")
    pool = await create_pool(kline_db.db.manager_url, min_size=1, max_size=2)
    runner = sweep_service.SweepRunner(pool=pool, workers=1, dask_address=cluster.address)
    task = asyncio.create_task(runner.run())
    try:
        async def running():
            return await kadmin.fetchval("SELECT status = 'running' AND trials_done > 0 FROM trading.backtest_sweeps "
                                         "WHERE id = $1", row["id"])

        await wait_for(running, timeout=120)
        runner.stop()
        await asyncio.wait_for(task, timeout=15)
    finally:
        task.cancel()
        await pool.close()
    ended = await kadmin.fetchrow("SELECT status, error FROM trading.backtest_sweeps WHERE id = $1", row["id"])
    assert (ended["status"], ended["error"]) == ("failed", sweep_service.STOP_REASON)
    await _idle(cluster)


async def test_an_unreachable_scheduler_fails_the_sweep_naming_the_address(kadmin, kline_db, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sweep_cluster, "CONNECT_TIMEOUT_S", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    row, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(sweep_body(kline_db)),
                                              actor="test", runner="cli")
    started = time.monotonic()
    status = await sweep_service.execute_sweep(kadmin, sweep_id=row["id"], owner=runner_identity("cli"),
                                               workers=1, dask_address=address)
    assert status == "failed" and time.monotonic() - started < 30
    ended = await kadmin.fetchrow("SELECT status, error, trials_done FROM trading.backtest_sweeps WHERE id = $1",
                                  row["id"])
    assert ended["status"] == "failed" and ended["trials_done"] == 0
    assert ended["error"].startswith(f"DaskUnavailable: cannot reach the Dask scheduler at {address}")


async def test_a_lost_scheduler_fails_the_sweep_naming_the_address(kadmin, kline_db, tmp_path):  # noqa: F811
    row, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(big_sweep(kline_db)),
                                              actor="test", runner="cli")
    import asyncpg

    from gordon_manager.db.connect import init_connection

    conn = await asyncpg.connect(kline_db.db.admin_url)  # the sweep's own (kadmin polls)
    await init_connection(conn)
    with dask_cluster(tmp_path, 1) as own:
        task = asyncio.create_task(sweep_service.execute_sweep(conn, sweep_id=row["id"],
                                                               owner=runner_identity("cli"), workers=0,
                                                               dask_address=own.address))

        await trials_under_way(kadmin, row["id"], running=False)
        os.killpg(own.scheduler.pid, signal.SIGKILL)
        started = time.monotonic()
        try:
            assert await asyncio.wait_for(task, timeout=60) == "failed"
        finally:
            await conn.close()
        assert time.monotonic() - started < 20
    ended = await kadmin.fetchrow("SELECT status, error, trials_done FROM trading.backtest_sweeps WHERE id = $1",
                                  row["id"])
    assert ended["status"] == "failed" and ended["trials_done"] > 0  # the finished trials are kept
    assert ended["error"] == (f"DaskUnavailable: a chunk was lost on the Dask cluster at {own.address} "
                              "(the scheduler connection was lost)")


async def test_a_worker_that_joins_during_a_sweep_gets_the_bars_once_and_runs_trials(kadmin, kline_db,  # noqa: F811
                                                                                     tmp_path):
    import asyncpg

    from gordon_manager.db.connect import init_connection

    ts = kline_db.big.ts
    body = sweep_body(kline_db, symbol="ETHUSDT", **{"from": iso(int(ts[0])), "to": iso(int(ts[100_000]))},
                      grid={"fast": list(range(2, 12)), "slow": list(range(20, 220, 10))})
    row, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(body), actor="test",
                                              runner="cli")
    conn = await asyncpg.connect(kline_db.db.admin_url)  # the sweep's own (kadmin polls)
    await init_connection(conn)
    with dask_cluster(tmp_path, 1) as own:
        first = set(await asyncio.to_thread(own.received))
        task = asyncio.create_task(sweep_service.execute_sweep(conn, sweep_id=row["id"],
                                                               owner=runner_identity("cli"), workers=0,
                                                               dask_address=own.address))
        try:
            await trials_under_way(kadmin, row["id"], running=False)
            await asyncio.to_thread(own.add_worker)

            async def newcomer_ran():
                received = await asyncio.to_thread(own.received)
                joined = [r for w, r in received.items() if w not in first]
                return joined[0] if joined and joined[0]["trials"] > 0 else None

            newcomer = await wait_for(newcomer_ran, timeout=120, interval=0.1)
            await sweep_service.cancel_sweep(kadmin, sweep_id=row["id"])
            assert await asyncio.wait_for(task, timeout=60) == "cancelled"
        finally:
            task.cancel()
            await conn.close()
    # The plugin reached the worker that joined: it unpickled the bars once, and ran trials with them.
    assert newcomer["cargo"] == 1


def test_a_cluster_without_workers_is_a_clear_error(kline_db, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(sweep_cluster, "WORKERS_TIMEOUT_S", 1.0)
    with dask_cluster(tmp_path, 0) as empty:
        started = time.monotonic()
        with pytest.raises(sweep_cluster.DaskUnavailable,
                           match=f"the Dask cluster at {empty.address} has no worker \\(waited 1 s\\)"):
            sweep_cluster.open_pool(kline_db.series.slice(0, 100), "sma_crossover", CONFIG, workers=0,
                                    dask_address=empty.address)
        assert time.monotonic() - started < 10


def test_the_sweep_command_runs_on_the_cluster(cli_env, kline_db, cluster):  # noqa: F811
    from typer.testing import CliRunner

    from gordon_manager.cli import app as cli_app
    from tests.backtests.test_sweeps import sweep_args

    cluster.reset()
    result = CliRunner().invoke(cli_app, sweep_args(kline_db, "--grid", '{"fast": [5, 10], "slow": [20, 40, 60]}',
                                                    "--dask-address", cluster.address, "--top", "3"))
    assert result.exit_code == 0, result.output
    assert "6/6 trials" in result.stdout
    received = cluster.received()
    assert sum(r["trials"] for r in received.values()) == 6 and all(r["cargo"] == 1 for r in received.values())


def test_a_missing_dask_command_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(pytest.fail.Exception, match=r"pip install -e '\.\[test\]'"):
        require_dask()
