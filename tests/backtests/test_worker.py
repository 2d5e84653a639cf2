"""The job runner (process pool, crashes, shutdown, restart recovery), one run's life cycle in
``job.execute_run``, and the `gordon-manager backtest` command."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path

import asyncpg
import pytest
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from gordon_manager.backtests import repo, service, worker
from gordon_manager.backtests.job import PHASES, RunJob, RunOutcome, execute_run
from gordon_manager.backtests.schemas import BacktestCreate
from gordon_manager.cli import app as cli_app
from gordon_manager.db.connect import connect, create_pool
from gordon_manager.settings import get_settings
from gordon_manager.strategies import StrategySpec, register
from gordon_manager.strategies.registry import _REGISTRY
from tests.conftest import make_settings, wait_for
from tests.marketdata.fixtures import at, iso, kadmin, kline_db  # noqa: F401


def die(job: RunJob) -> RunOutcome:
    """A worker that dies hard (as if OOM-killed)."""
    os._exit(3)


HANG_MARKER_ENV = "GORDON_TEST_HANG_MARKER"


def hang(job: RunJob) -> RunOutcome:
    """A worker that claims its run like a real one, touches $GORDON_TEST_HANG_MARKER.<run id>, then never
    finishes on its own."""
    async def claim() -> None:
        conn = await connect(job.database_url, timeout=job.connect_timeout)
        try:
            assert await repo.claim_run(conn, run_id=job.run_id, owner=job.owner) is not None
        finally:
            await conn.close()

    asyncio.run(claim())
    Path(f"{os.environ[HANG_MARKER_ENV]}.{job.run_id}").touch()
    time.sleep(120)  # the workload itself: stays busy until the runner terminates it
    raise AssertionError("not reached")


def body(kline_db, *, stop: int = 3000, **overrides) -> BacktestCreate:
    ts = kline_db.series.ts
    values = {"strategy": "sma_crossover", "params": {"fast": 4, "slow": 16}, "symbol": "BTCUSDT", "interval": "1m",
              "from": iso(int(ts[0])), "to": iso(int(ts[stop]))}
    values.update(overrides)
    return BacktestCreate.model_validate(values)


@pytest.fixture
async def mconn(kline_db):
    conn = await connect(kline_db.db.manager_url)
    yield conn
    await conn.close()


@pytest.fixture
async def mpool(kline_db):
    pool = await create_pool(kline_db.db.manager_url, min_size=1, max_size=3)
    yield pool
    await pool.close()


async def queued(mconn, kline_db, *, runner: str = "manager", **overrides) -> int:
    row = await service.create_backtest(mconn, body=body(kline_db, **overrides), actor="test", runner=runner)
    return row["id"]


async def status_of(kadmin, run_id: int):
    return await kadmin.fetchrow("SELECT status, error, progress, cancel_requested FROM trading.runs WHERE id = $1",
                                 run_id)


async def test_a_dead_worker_fails_its_run_and_the_next_run_gets_a_fresh_pool(kline_db, kadmin, mconn, mpool):
    runner = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, workers=1, target=die)
    try:
        dead = await queued(mconn, kline_db)
        await runner.run_once()
        assert list(runner.inflight) == [dead]
        await asyncio.wait_for(asyncio.wait(list(runner.inflight.values())), 60)
        await runner.run_once()
        row = await status_of(kadmin, dead)
        assert row["status"] == "failed" and row["error"].startswith("worker process failed: BrokenProcessPool")
        assert runner._executor is None and not runner.inflight
        runner.target = worker.run_in_process
        good = await queued(mconn, kline_db)
        await runner.run_once()
        await asyncio.wait_for(asyncio.wait(list(runner.inflight.values())), 60)
        await runner.run_once()
        assert (await status_of(kadmin, good))["status"] == "done"
        assert runner.outcomes[-1].run_id == good and runner.outcomes[-1].status == "done"
    finally:
        await runner.teardown()


def worker_pid(job: RunJob) -> RunOutcome:
    """Pool target: the real run, which also says which process ran it (through its error field)."""
    outcome = worker.run_in_process(job)
    return RunOutcome(run_id=outcome.run_id, status=outcome.status, error=f"pid {os.getpid()}")


async def test_a_prewarmed_runner_starts_its_worker_before_the_first_run(kline_db, kadmin, mconn, mpool):
    runner = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, workers=1, prewarm=True,
                                   target=worker_pid)
    try:
        await runner.setup()
        assert runner.warmed is not None
        pid = await asyncio.wait_for(runner.warmed, 60)  # spawned and imported, with nothing queued
        assert pid != os.getpid() and os.path.exists(f"/proc/{pid}")
        run_id = await queued(mconn, kline_db)
        await runner.run_once()
        await asyncio.wait_for(asyncio.wait(list(runner.inflight.values())), 60)
        await runner.run_once()
        assert (await status_of(kadmin, run_id))["status"] == "done"
        assert runner.outcomes[-1].error == f"pid {pid}"  # the first run ran in the warmed process
    finally:
        await runner.teardown()
    # The warmed worker dies while idle: the pool is broken before any run; the next run gets a fresh one.
    runner = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, workers=1, prewarm=True)
    try:
        await runner.setup()
        assert runner.warmed is not None
        os.kill(await asyncio.wait_for(runner.warmed, 60), signal.SIGKILL)
        executor = runner._executor
        assert executor is not None
        await wait_for(lambda: executor._broken, timeout=30)  # the pool noticed its dead worker
        run_id = await queued(mconn, kline_db)

        async def done() -> bool:
            await runner.run_once()
            return (await status_of(kadmin, run_id))["status"] == "done"

        await wait_for(done, timeout=60, interval=0.2)
        assert runner._executor is not executor
    finally:
        await runner.teardown()
    cold = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, workers=1)
    await cold.setup()
    assert cold.warmed is None and cold._executor is None  # without prewarm, no process until the first run
    await cold.teardown()


async def test_stopping_fails_in_flight_runs_and_ends_the_workers(kline_db, kadmin, mconn, mpool, tmp_path,
                                                                 monkeypatch):
    marker = tmp_path / "hanging"
    monkeypatch.setenv(HANG_MARKER_ENV, str(marker))  # inherited by the spawned worker (pool starts below)
    runner = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, workers=1, target=hang)
    run_id = await queued(mconn, kline_db)
    other = await queued(mconn, kline_db)  # waits for the single worker: stays queued
    await runner.run_once()
    assert list(runner.inflight) == [run_id]
    started_run = Path(f"{marker}.{run_id}")
    await wait_for(started_run.exists, timeout=60)  # the worker is inside the run, not still spawning
    started = time.monotonic()
    await runner.teardown()
    assert time.monotonic() - started < worker.STOP_GRACE_S + 5
    row = await status_of(kadmin, run_id)
    assert (row["status"], row["error"]) == ("failed", worker.STOP_REASON)
    assert (await status_of(kadmin, other))["status"] == "queued"
    await kadmin.execute("UPDATE trading.runs SET status = 'cancelled' WHERE id = $1", other)


async def test_the_leader_fails_only_runs_whose_heartbeat_stopped(kline_db, kadmin, mpool):
    insert = ("INSERT INTO trading.runs (kind, status, strategy, symbol, interval, runner, heartbeat_at, created_at) "
              "VALUES ($1, $2, 'sma_crossover', 'BTCUSDT', '1m', $3, now() - $4 * interval '1 second', "
              "now() - interval '1 hour') RETURNING id")
    dead = await kadmin.fetchval(insert, "backtest", "running", "manager", 120)  # its manager died
    alive = await kadmin.fetchval(insert, "backtest", "running", "manager", 0)  # another replica's, beating
    queued_run = await kadmin.fetchval(insert, "backtest", "queued", "manager", 120)  # waits for any runner
    cli = await kadmin.fetchval(insert, "backtest", "running", "cli", 120)
    paper = await kadmin.fetchval(insert, "paper", "running", None, 120)
    follower = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, leads=lambda: False,
                                     stale_after_s=30)
    assert await follower.recover_stale() == []  # a replica that does not lead recovers nothing
    leader = worker.BacktestRunner(pool=mpool, database_url=kline_db.db.manager_url, leads=lambda: True,
                                   stale_after_s=30)
    assert dead in await leader.recover_stale(now=1000.0)
    row = await status_of(kadmin, dead)
    assert (row["status"], row["error"]) == ("failed", worker.RESTART_REASON)
    assert [(await status_of(kadmin, r))["status"] for r in (alive, queued_run, cli, paper)] == \
        ["running", "queued", "running", "running"]
    await kadmin.execute("UPDATE trading.runs SET heartbeat_at = now() - interval '2 minutes' WHERE id = $1", alive)
    assert await leader.recover_stale(now=1005.0) == []  # checked at most every stale_after_s / 3
    assert alive in await leader.recover_stale(now=1010.0)
    await kadmin.execute("UPDATE trading.runs SET status = 'failed' WHERE id = ANY($1::bigint[])",
                         [queued_run, cli, paper])


async def test_a_runner_fails_only_the_runs_its_own_workers_claimed(kline_db, kadmin, mconn):
    run_id = await queued(mconn, kline_db)
    claimed = await repo.claim_run(mconn, run_id=run_id, owner="manager:replica-a:1:x")
    assert claimed is not None
    assert await repo.claim_run(mconn, run_id=run_id, owner="manager:replica-b:1:y") is None  # claimed once
    # replica b dispatched it too and stops: the run is a's, b leaves it running
    assert await repo.mark_failed(mconn, run_ids=[run_id], error=worker.STOP_REASON,
                                  owner="manager:replica-b:1:y", queued=False) == []
    assert (await status_of(kadmin, run_id))["status"] == "running"
    assert await repo.mark_failed(mconn, run_ids=[run_id], error=worker.STOP_REASON,
                                  owner="manager:replica-a:1:x", queued=False) == [run_id]
    row = await status_of(kadmin, run_id)
    assert (row["status"], row["error"]) == ("failed", worker.STOP_REASON)


async def test_start_fails_nothing_on_a_replica_that_does_not_lead(kline_db, kadmin, tmp_path: Path):
    from gordon_manager.app import create_app

    insert = ("INSERT INTO trading.runs (kind, status, strategy, symbol, interval, runner, heartbeat_at) "
              "VALUES ('backtest', 'running', 'sma_crossover', 'BTCUSDT', '1m', 'manager', now() - interval '1 hour') "
              "RETURNING id")
    other_replicas = await kadmin.fetchval(insert)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    application = create_app(make_settings(kline_db.db, data_dir))  # reconcile disabled: it never leads
    async with application.router.lifespan_context(application):
        ctx = application.state.ctx
        assert ctx.leads() is False
        runner = ctx.services.backtests
        await wait_for(lambda: runner.iterations >= 2, timeout=30, interval=0.05)
        assert (await status_of(kadmin, other_replicas))["status"] == "running"
    await kadmin.execute("UPDATE trading.runs SET status = 'failed' WHERE id = $1", other_replicas)


async def test_a_run_that_is_not_queued_is_skipped(kline_db, kadmin, mconn):
    run_id = await queued(mconn, kline_db, runner="cli")
    await kadmin.execute("UPDATE trading.runs SET status = 'cancelled' WHERE id = $1", run_id)
    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url))
    assert outcome.status == "skipped"


async def test_a_cancel_flag_set_before_the_claim_cancels_at_once(kline_db, kadmin, mconn):
    run_id = await queued(mconn, kline_db, runner="cli")
    await kadmin.execute("UPDATE trading.runs SET cancel_requested = true WHERE id = $1", run_id)
    phases = []
    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url), on_phase=lambda p, f: phases.append(p))
    assert outcome.status == "cancelled" and phases[0] == "load" and "write" not in phases
    assert (await status_of(kadmin, run_id))["status"] == "cancelled"


async def test_a_cancel_during_the_engine_stops_it_through_the_heartbeat(kline_db, kadmin, mconn):
    ts = kline_db.big.ts
    run_id = await queued(mconn, kline_db, runner="cli", symbol="ETHUSDT", strategy="rsi_reversion",
                          params={"period": 2, "oversold": 49, "overbought": 51},
                          **{"from": iso(int(ts[0])), "to": iso(int(ts[-1]) + 60_000)})
    engine_busy, release = threading.Event(), threading.Event()

    def on_phase(phase: str, fraction: float) -> None:
        # Runs on the engine thread: hold the engine mid-run (the event loop keeps beating).
        if phase == "engine" and fraction >= 0.1 and not release.is_set():
            engine_busy.set()
            release.wait(30)

    task = asyncio.ensure_future(execute_run(RunJob(run_id, kline_db.db.manager_url), on_phase=on_phase))
    try:
        await wait_for(engine_busy.is_set, timeout=60)

        async def progress_written():
            return (await status_of(kadmin, run_id))["progress"] > 0

        await wait_for(progress_written, timeout=10)
        asked_at = await kadmin.fetchval("UPDATE trading.runs SET cancel_requested = true WHERE id = $1"
                                         " RETURNING clock_timestamp()", run_id)

        async def beat_seen_it():
            return await kadmin.fetchval("SELECT heartbeat_at > $2 FROM trading.runs WHERE id = $1", run_id, asked_at)

        await wait_for(beat_seen_it, timeout=10)
    finally:
        release.set()
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.status == "cancelled"
    row = await status_of(kadmin, run_id)
    assert row["status"] == "cancelled" and 0.05 <= row["progress"] < 1


class BoomParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def boom(bars, params):
    raise RuntimeError("boom at bar 0")


async def test_a_failing_strategy_fails_the_run_with_its_error(kline_db, kadmin, mconn):
    register(StrategySpec(name="boom_test", description="raises", params_model=BoomParams, signal_fn=boom,
                          warmup_fn=lambda p: 1))
    try:
        run_id = await queued(mconn, kline_db, runner="cli", strategy="boom_test", params={})
        outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url))
    finally:
        _REGISTRY.pop("boom_test")
    assert (outcome.status, outcome.error) == ("failed", "RuntimeError: boom at bar 0")
    row = await status_of(kadmin, run_id)
    assert (row["status"], row["error"]) == ("failed", "RuntimeError: boom at bar 0")


async def test_klines_deleted_after_queueing_fail_the_run(kline_db, kadmin, mconn):
    await kadmin.execute("INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low,"
                         " close, volume) VALUES ('GONEUSDT', '1m', '2024-01-01', '2024-01-01 00:00:59', 1, 1, 1, 1, 1)")
    run_id = await queued(mconn, kline_db, runner="cli", symbol="GONEUSDT",
                          **{"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"})
    await kadmin.execute("DELETE FROM market_data.klines WHERE symbol = 'GONEUSDT'")
    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url))
    assert outcome.status == "failed" and outcome.error.startswith("LookupError: no klines for GONEUSDT 1m between")


@pytest.mark.parametrize("points_elsewhere", [False, True], ids=["one-transaction", "points-over-other-connections"])
async def test_a_run_ended_elsewhere_while_writing_keeps_no_results(kline_db, kadmin, mconn, monkeypatch,
                                                                    points_elsewhere):
    if points_elsewhere:  # a long run: its points writers find it ended and write nothing (migration 0029)
        monkeypatch.setattr("gordon_manager.backtests.job.LONG_RUN_BARS", 1_000)
    run_id = await queued(mconn, kline_db, runner="cli")

    def on_phase(phase: str, fraction: float) -> None:
        if phase == "write" and fraction == PHASES["write"][0]:  # a stopping manager fails the run as it writes
            async def fail_it():
                conn = await asyncpg.connect(kline_db.db.admin_url)
                await conn.execute("UPDATE trading.runs SET status = 'failed', error = 'manager stopped' WHERE id = $1",
                                   run_id)
                await conn.close()

            thread = threading.Thread(target=lambda: asyncio.run(fail_it()))
            thread.start()
            thread.join()

    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url), on_phase=on_phase)
    assert outcome.status == "failed" and "ended while it was writing" in outcome.error
    assert (await status_of(kadmin, run_id))["error"] == "manager stopped"
    assert await kadmin.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run_id) == 0
    assert await kadmin.fetchval("SELECT count(*) FROM trading.roundtrips WHERE run_id = $1", run_id) == 0
    assert await kadmin.fetchval("SELECT count(*) FROM trading.equity_rollups WHERE run_id = $1", run_id) == 0


async def test_an_interrupted_run_is_recorded_as_cancelled(kline_db, kadmin, mconn):
    ts = kline_db.big.ts
    run_id = await queued(mconn, kline_db, runner="cli", symbol="ETHUSDT", strategy="rsi_reversion",
                          params={"period": 2, "oversold": 49, "overbought": 51},
                          **{"from": iso(int(ts[0])), "to": iso(int(ts[-1]) + 60_000)})
    engine_started = threading.Event()
    task = asyncio.ensure_future(execute_run(RunJob(run_id, kline_db.db.manager_url),
                                             on_phase=lambda p, f: engine_started.set() if p == "engine" else None))
    await wait_for(engine_started.is_set, timeout=60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = await status_of(kadmin, run_id)
    assert (row["status"], row["error"]) == ("cancelled", "interrupted")


def test_default_workers_leaves_a_cpu():
    assert 1 <= worker.default_workers() <= 4
    assert worker.default_workers() == max(1, min(4, (os.cpu_count() or 2) - 1))


# -- the `gordon-manager backtest` command -------------------------------------------------------

@pytest.fixture
def cli_env(kline_db, tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith(("GORDON_", "DOCKER_SOCKET")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GORDON_DATABASE_URL", kline_db.db.manager_url)
    monkeypatch.setenv("GORDON_MANAGER_DATA_DIR", str(tmp_path / "data"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    root.handlers[:] = handlers
    root.setLevel(level)


def backtest_args(kline_db, *extra: str, symbol: str = "BTCUSDT") -> list[str]:
    ts = kline_db.series.ts
    return ["backtest", "--strategy", "sma_crossover", "--symbol", symbol, "--interval", "1m",
            "--from", iso(int(ts[0])), "--to", iso(int(ts[4000])), *extra]


def fetch(url: str, query: str, *args):
    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchrow(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_backtest_command_writes_the_run_and_prints_stats(cli_env, kline_db):
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, "--params", '{"fast": 6, "slow": 24}', "--fee-bps", "5",
                                                       "--slippage-bps", "2", "--initial-cash", "5000"))
    assert result.exit_code == 0, result.output
    run = fetch(kline_db.db.admin_url, "SELECT * FROM trading.runs WHERE runner = 'cli' ORDER BY id DESC LIMIT 1")
    assert f"backtest run {run['id']}: done" in result.stdout
    assert "total return" in result.stdout and "engine throughput" in result.stdout
    assert (run["status"], run["created_by"], run["strategy"]) == ("done", "cli", "sma_crossover")
    points = fetch(kline_db.db.admin_url, "SELECT count(*) AS n FROM trading.equity_points WHERE run_id = $1", run["id"])
    assert points["n"] == 4000


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--params", "{nope"], 2, "--params is not valid JSON"),
    (["--params", "[1]"], 2, "--params must be a JSON object"),
    (["--fee-bps", "-3"], 2, "invalid backtest: execution.taker_fee_bps"),
    (["--params", '{"fast": 9, "slow": 3}'], 2, "fast must be < slow"),
])
def test_backtest_command_refuses_bad_input(cli_env, kline_db, args, code, message):
    result = CliRunner().invoke(cli_app, backtest_args(kline_db, *args))
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_backtest_command_reports_missing_data_and_failed_runs(cli_env, kline_db, broken_klines):
    missing = CliRunner().invoke(cli_app, backtest_args(kline_db, symbol="XRPUSDT"))
    assert missing.exit_code == 2 and "no klines for XRPUSDT 1m" in missing.stderr
    failed = CliRunner().invoke(cli_app, backtest_args(kline_db, symbol="CLIBROKEUSDT"))
    assert failed.exit_code == 1
    assert "failed: ValueError: low/high must bound open/close" in failed.stderr


@pytest.fixture
async def broken_klines(kadmin, kline_db):
    """Broken klines (high below close) for CLIBROKEUSDT over the test range."""
    ts = kline_db.series.ts
    await kadmin.execute(
        "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
        " SELECT 'CLIBROKEUSDT', '1m', t, t, 10, 9, 8, 10, 1"
        "   FROM generate_series($1::timestamptz, $1::timestamptz + interval '10 minutes', interval '1 minute') t"
        " ON CONFLICT DO NOTHING", at(int(ts[0])))


def test_backtest_command_configuration_errors(cli_env, kline_db, monkeypatch):
    monkeypatch.setenv("GORDON_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, backtest_args(kline_db))
    assert result.exit_code == 2 and "cannot connect to PostgreSQL at 127.0.0.1:1" in result.stderr
    monkeypatch.setenv("GORDON_MANAGER_DB_POOL_MAX", "many")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, backtest_args(kline_db))
    assert result.exit_code == 2 and "invalid configuration" in result.stderr


async def test_a_failed_heartbeat_does_not_fail_the_run(kline_db, kadmin, mconn, monkeypatch, caplog):
    from gordon_manager.backtests import repo

    real, failed = repo.heartbeat, threading.Event()
    calls = []

    async def flaky(conn, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # the check after loading the bars
            return await real(conn, **kwargs)
        failed.set()
        raise ConnectionResetError("network blip")

    monkeypatch.setattr(repo, "heartbeat", flaky)

    def on_phase(phase: str, fraction: float) -> None:
        if phase == "engine":
            failed.wait(10)  # hold the engine (its own thread) until a beat has failed

    run_id = await queued(mconn, kline_db, runner="cli")
    with caplog.at_level(logging.WARNING, logger="gordon_manager.backtests.job"):
        outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url), on_phase=on_phase)
    assert outcome.status == "done" and failed.is_set()
    assert any(r.getMessage() == "backtest heartbeat failed" for r in caplog.records)
