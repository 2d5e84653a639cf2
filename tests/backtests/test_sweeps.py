"""Parameter sweeps: trial generation, objectives, heatmap, and POST/GET /backtests/sweeps end to end."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from gordon_manager.backtests import sweep, sweep_service
from gordon_manager.backtests.job import runner_identity
from gordon_manager.backtests.sweep_schemas import SweepCreate
from gordon_manager.errors import Unprocessable
from gordon_manager.execution import ExecutionConfig
from gordon_manager.runs.schemas import RunStats
from gordon_manager.strategies import get_strategy
from tests.backtests.test_api import problem, wait_terminal
from tests.backtests.test_worker import cli_env  # noqa: F401
from tests.conftest import wait_for
from tests.marketdata.fixtures import iso, kadmin, kapp, kclient, kline_db  # noqa: F401

SMA = get_strategy("sma_crossover")
EXECUTION = {"initialCash": "10000", "takerFeeBps": "5", "slippageBps": "1"}
CONFIG = ExecutionConfig(initial_cash="10000", taker_fee_bps="5", slippage_bps="1")


def sweep_body(kline_db, *, start: int = 0, stop: int = 4000, **overrides) -> dict:
    ts = kline_db.series.ts
    body = {"strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m", "from": iso(int(ts[start])),
            "to": iso(int(ts[stop])), "execution": EXECUTION,
            "grid": {"fast": [3, 5, 10, 40], "slow": [20, 40, 80]}, "objective": "sharpe", "minTrades": 5}
    body.update(overrides)
    return body


async def wait_sweep(kadmin, sweep_id: int, timeout: float = 120.0):
    async def finished():
        row = await kadmin.fetchrow("SELECT * FROM trading.backtest_sweeps WHERE id = $1", sweep_id)
        return row if row["status"] in {"done", "failed", "cancelled"} else None

    return await wait_for(finished, timeout=timeout, interval=0.05)


# -- the pure part ---------------------------------------------------------------------------------
def test_grid_drops_the_combinations_the_strategy_refuses():
    trials, dropped = sweep.grid_trials(SMA, {"fast": [5, 10, 40], "slow": [20, 40]})
    assert trials == [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 40}, {"fast": 10, "slow": 20},
                      {"fast": 10, "slow": 40}]
    assert dropped == 2


def test_a_seeded_random_search_is_reproducible_and_distinct():
    space = {"fast": {"min": 2, "max": 30}, "slow": {"values": [20, 40, 60]}}
    first, dropped = sweep.random_trials(SMA, space, budget=25, seed=42)
    again, _ = sweep.random_trials(SMA, space, budget=25, seed=42)
    other, _ = sweep.random_trials(SMA, space, budget=25, seed=43)
    assert first == again != other
    assert len(first) == 25 and len({tuple(sorted(p.items())) for p in first}) == 25
    assert all(2 <= p["fast"] <= 30 and p["slow"] in (20, 40, 60) and p["fast"] < p["slow"] for p in first)
    assert all(isinstance(p["fast"], int) for p in first)
    assert dropped >= 0
    tiny, _ = sweep.random_trials(SMA, {"fast": {"values": [5]}, "slow": {"values": [20]}}, budget=10, seed=1)
    assert tiny == [{"fast": 5, "slow": 20}]  # a small space ends the search, without looping forever


def test_a_big_return_over_a_few_bars_is_a_trial_not_an_overflow():
    # +~90% within an hour annualises beyond a float: the trial has cagr/calmar None, not an OverflowError
    import numpy as np

    from gordon_manager.execution import Bars

    n = 60
    close = np.concatenate([np.full(10, 100.0), np.linspace(100.0, 190.0, n - 10)])
    ts = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    bars = Bars(ts, close, close, close, close, np.ones(n))
    stats = sweep.trial_stats(bars, "sma_crossover", {"fast": 2, "slow": 5}, CONFIG)
    assert stats["total_return"] > 0.5 and stats["cagr"] is None and stats["calmar"] is None
    assert sweep.objective_value(stats, "cagr") is None and sweep.objective_value(stats, "total_return") > 0.5


def test_trial_stats_objectives_and_constraints(kline_db):
    bars = kline_db.series.slice(0, 4000)
    stats = sweep.trial_stats(bars, "sma_crossover", {"fast": 5, "slow": 20}, CONFIG)
    assert stats["trade_count"] > 5 and stats["bars"] == 4000
    years = 4000 / (365 * 1440)
    assert stats["cagr"] == pytest.approx((1 + stats["total_return"]) ** (1 / years) - 1)
    assert stats["calmar"] == pytest.approx(stats["cagr"] / stats["max_drawdown"])
    assert sweep.objective_value(stats, "sharpe") == stats["sharpe"]
    assert sweep.objective_value(stats, "max_drawdown") == -stats["max_drawdown"]
    assert sweep.objective_value({"win_rate": None}, "win_rate") is None
    assert sweep.objective_value({"sharpe": math.nan}, "sharpe") is None
    assert sweep.objective_value(None, "sharpe") is None
    assert sweep.feasible(stats, 1.0, min_trades=stats["trade_count"])
    assert not sweep.feasible(stats, 1.0, min_trades=stats["trade_count"] + 1)
    assert not sweep.feasible(stats, None, min_trades=0)
    failed = sweep.run_trial(bars, "sma_crossover", CONFIG, 3, {"fast": 50, "slow": 20})
    assert failed.stats is None and failed.n == 3 and "fast must be < slow" in failed.error


def test_heatmap_keeps_the_best_value_per_cell():
    trials = [{"params": {"a": 1, "b": 10, "c": 0}, "value": 0.5, "feasible": True},
              {"params": {"a": 1, "b": 10, "c": 1}, "value": 0.9, "feasible": True},
              {"params": {"a": 2, "b": 10, "c": 0}, "value": 2.0, "feasible": False},
              {"params": {"a": 2, "b": 20, "c": 0}, "value": -1.0, "feasible": True}]
    assert sweep.heatmap(trials, "a", "b") == {"x": "a", "y": "b", "x_values": [1, 2], "y_values": [10, 20],
                                               "values": [[0.9, None], [None, -1.0]]}


def test_the_pool_runs_trials_in_worker_processes_like_in_process(kline_db):
    bars = kline_db.series.slice(0, 3000)
    chunk = [(0, {"fast": 5, "slow": 20}), (1, {"fast": 10, "slow": 40})]
    with sweep.TrialPool(bars, "sma_crossover", CONFIG, workers=1) as pool:
        assert pool.chunk_size(1000) == 64 and pool.chunk_size(10) == 2
        remote = pool.submit(chunk).result(timeout=60)
    local = sweep.TrialPool(bars, "sma_crossover", CONFIG, workers=0).submit(chunk).result()
    assert remote == local and [o.n for o in remote] == [0, 1] and remote[0].stats["trade_count"] > 0


def test_a_request_is_refused_before_anything_is_queued(kline_db):
    body = sweep_body(kline_db, grid={"fast": [5], "nope": [1]})
    with pytest.raises(Exception, match="no param 'nope'"):
        sweep_service.plan_trials(SweepCreate.model_validate(body))
    with pytest.raises(Exception, match="no valid parameter set"):
        sweep_service.plan_trials(SweepCreate.model_validate(sweep_body(kline_db, grid={"fast": [50],
                                                                                          "slow": [20]})))
    with pytest.raises(Exception, match="either grid or search"):
        SweepCreate.model_validate(sweep_body(kline_db, search={"trials": 3, "space": {"fast": {"min": 1,
                                                                                               "max": 3}}}))


# -- end to end ------------------------------------------------------------------------------------
async def test_a_grid_sweep_ranks_its_trials_like_the_engine(kclient, kadmin, kline_db, operator_headers):
    body = sweep_body(kline_db)
    assert (await kclient.post("/backtests/sweeps", json=body)).status_code == 401
    response = await kclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    accepted = response.json()
    sweep_id = accepted["id"]
    assert accepted == {"id": sweep_id, "status": "queued", "trialsTotal": 10, "trialsDropped": 2,
                        "sweepUrl": f"/backtests/sweeps/{sweep_id}"}
    assert response.headers["location"] == accepted["sweepUrl"]
    row = await wait_sweep(kadmin, sweep_id)
    assert row["status"] == "done", row["error"]

    detail = (await kclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    assert (detail["trialsDone"], detail["trialsTotal"], detail["progress"]) == (10, 10, 1.0)
    assert detail["objective"] == "sharpe" and detail["minTrades"] == 5 and detail["method"] == "grid"
    assert detail["execution"]["takerFeeBps"] == "5"
    bars = kline_db.series.slice(0, 4000)
    expected = {}
    for params, _ in ((p, None) for p in sweep.grid_trials(SMA, body["grid"])[0]):
        stats = sweep.trial_stats(bars, "sma_crossover", params, CONFIG)
        expected[(params["fast"], params["slow"])] = stats
    assert len(detail["trials"]) == 10
    for trial in detail["trials"]:
        stats = expected[(trial["params"]["fast"], trial["params"]["slow"])]
        # as the API shows a run's stats (RunStats: camelCase, exact amounts as strings), bit for bit
        assert trial["stats"] == RunStats.model_validate(stats).model_dump(mode="json", by_alias=True)
        assert trial["feasible"] == (stats["trade_count"] >= 5)
    ranked = [t for t in detail["trials"] if t["rank"] is not None]
    assert [t["rank"] for t in ranked] == list(range(1, len(ranked) + 1))
    assert [t["value"] for t in ranked] == sorted((t["value"] for t in ranked), reverse=True)
    assert all(t["rank"] is None for t in detail["trials"][len(ranked):])
    best = max((s["sharpe"], k) for k, s in expected.items() if s["trade_count"] >= 5)
    assert detail["best"]["params"] == {"fast": best[1][0], "slow": best[1][1]}
    assert detail["bestTrial"] == detail["best"]["n"] and detail["bestValue"] == pytest.approx(best[0])
    heat = detail["heatmap"]
    assert (heat["x"], heat["y"], heat["xValues"], heat["yValues"]) == ("fast", "slow", [3, 5, 10, 40], [20, 40, 80])
    assert heat["values"][0][3] is None  # fast 40, slow 20: refused by the strategy, never run
    assert heat["values"][2][0] == pytest.approx(expected[(3, 80)]["sharpe"]) or expected[(3, 80)]["trade_count"] < 5

    swapped = (await kclient.get(f"/backtests/sweeps/{sweep_id}", params={"x": "slow", "y": "fast",
                                                                          "limit": 3})).json()
    assert swapped["heatmap"]["xValues"] == [20, 40, 80] and len(swapped["trials"]) == 3
    problem(await kclient.get(f"/backtests/sweeps/{sweep_id}", params={"x": "nope"}), 422)
    problem(await kclient.get("/backtests/sweeps/999999"), 404)
    problem(await kclient.post(f"/backtests/sweeps/{sweep_id}/cancel", headers=operator_headers), 409)
    problem(await kclient.post("/backtests/sweeps/999999/cancel", headers=operator_headers), 404)

    # Any trial, re-run as a full backtest, gives the stats the sweep stored.
    n = detail["best"]["n"]
    response = await kclient.post(f"/backtests/sweeps/{sweep_id}/trials/{n}/run", headers=operator_headers)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    assert response.json() == {"id": run_id, "status": "queued", "runUrl": f"/runs/{run_id}"}
    run = await wait_terminal(kadmin, run_id)
    assert run["status"] == "done", run["error"]
    run_stats = dict(run["stats"])  # as stored (snake_case)
    run_stats.pop("timings")
    trial_stats = detail["best"]["stats"]  # a run has the trial's cagr and calmar too (same formulas)
    assert RunStats.model_validate(run_stats).model_dump(mode="json", by_alias=True) == trial_stats
    problem(await kclient.post(f"/backtests/sweeps/{sweep_id}/trials/99/run", headers=operator_headers), 404)


async def test_a_seeded_search_runs_the_drawn_trials_and_lists_with_a_cursor(kclient, kadmin, kline_db,
                                                                             operator_headers):
    search = {"trials": 6, "seed": 7, "space": {"fast": {"min": 2, "max": 20}, "slow": {"min": 21, "max": 90}}}
    body = sweep_body(kline_db, grid=None, search=search, objective="maxDrawdown", minTrades=0)
    response = await kclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    row = await wait_sweep(kadmin, sweep_id)
    assert row["status"] == "done", row["error"]
    detail = (await kclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    drawn, _ = sweep.random_trials(SMA, {"fast": {"min": 2, "max": 20}, "slow": {"min": 21, "max": 90}},
                                   budget=6, seed=7)
    assert sorted((t["n"], t["params"]["fast"], t["params"]["slow"]) for t in detail["trials"]) == \
        [(i, p["fast"], p["slow"]) for i, p in enumerate(drawn)]
    values = [t["value"] for t in detail["trials"]]
    assert values == sorted(values)  # max drawdown: lowest first
    assert detail["bestValue"] == values[0] == detail["best"]["stats"]["maxDrawdown"]
    assert (detail["method"], detail["seed"], detail["objective"]) == ("random", 7, "maxDrawdown")
    assert min(min(v for v in line if v is not None) for line in detail["heatmap"]["values"]
               if any(v is not None for v in line)) == values[0]

    page = (await kclient.get("/backtests/sweeps", params={"limit": 1})).json()
    assert [s["id"] for s in page["items"]] == [sweep_id] and page["nextCursor"]
    rest = (await kclient.get("/backtests/sweeps", params={"limit": 1000, "cursor": page["nextCursor"]})).json()
    assert all(s["id"] < sweep_id for s in rest["items"]) and rest["nextCursor"] is None
    done = (await kclient.get("/backtests/sweeps", params={"status": "done"})).json()
    assert sweep_id in [s["id"] for s in done["items"]]
    problem(await kclient.get("/backtests/sweeps", params={"cursor": "garbage"}), 400)


async def test_bad_requests_are_problems(kclient, kline_db, operator_headers):
    bad = problem(await kclient.post("/backtests/sweeps", json=sweep_body(kline_db, grid={"fast": [5],
                                                                                        "nope": [1]}),
                                     headers=operator_headers), 422)
    assert bad["errors"][0]["field"] == "grid.nope"
    problem(await kclient.post("/backtests/sweeps", json=sweep_body(kline_db, strategy="nope"),
                               headers=operator_headers), 422)
    problem(await kclient.post("/backtests/sweeps", json=sweep_body(kline_db, grid={"fast": [5] * 200,
                                                                                   "slow": [20] * 200}),
                               headers=operator_headers), 422)
    problem(await kclient.post("/backtests/sweeps", json=sweep_body(kline_db, symbol="XRPUSDT"),
                               headers=operator_headers), 404)


def big_sweep(kline_db) -> dict:
    """200 trials over 200,000 bars: long enough to be cancelled or stopped while it runs."""
    ts = kline_db.big.ts
    return sweep_body(kline_db, symbol="ETHUSDT", **{"from": iso(int(ts[0])), "to": iso(int(ts[200_000]))},
                      grid={"fast": list(range(2, 12)), "slow": list(range(20, 220, 10))})


async def trials_under_way(kadmin, sweep_id: int, *, running: bool = True) -> None:
    """Wait until the sweep has finished trials (and, with ``running``, is still running)."""
    async def some_done():
        row = await kadmin.fetchrow("SELECT status, trials_done FROM trading.backtest_sweeps WHERE id = $1",
                                    sweep_id)
        return (row["status"] == "running" or not running) and row["trials_done"] > 0

    await wait_for(some_done, timeout=120)


async def test_cancel_stops_a_running_sweep_and_keeps_its_finished_trials(kclient, kadmin, kline_db,
                                                                          operator_headers):
    response = await kclient.post("/backtests/sweeps", json=big_sweep(kline_db), headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    await trials_under_way(kadmin, sweep_id)
    cancel = await kclient.post(f"/backtests/sweeps/{sweep_id}/cancel", headers=operator_headers)
    assert cancel.status_code == 202, cancel.text
    assert cancel.json() == {"id": sweep_id, "status": "running", "cancelRequested": True}
    row = await wait_sweep(kadmin, sweep_id, timeout=60)
    assert row["status"] == "cancelled" and 0 < row["trials_done"] < row["trials_total"] == 200
    stored = await kadmin.fetchval("SELECT count(*) FROM trading.backtest_sweep_trials WHERE sweep_id = $1 "
                                   "AND stats IS NOT NULL", sweep_id)
    assert stored == row["trials_done"]


async def test_a_queued_sweep_cancels_at_once_and_execute_skips_it(kadmin, kline_db):
    from gordon_manager.backtests import sweep_repo

    body = SweepCreate.model_validate(sweep_body(kline_db))
    row, _ = await sweep_service.create_sweep(kadmin, body=body, actor="test", runner="cli")
    cancelled = await sweep_service.cancel_sweep(kadmin, sweep_id=row["id"])
    assert (cancelled.status, cancelled.cancel_requested) == ("cancelled", True)
    assert await sweep_service.execute_sweep(kadmin, sweep_id=row["id"], owner=runner_identity("cli"),
                                             workers=0) == "skipped"
    assert await sweep_repo.get_trial(kadmin, sweep_id=row["id"], n=0) is not None


async def test_execute_sweep_in_process_reports_progress(kadmin, kline_db):
    body = SweepCreate.model_validate(sweep_body(kline_db, grid={"fast": [5, 10], "slow": [20, 40]}))
    row, dropped = await sweep_service.create_sweep(kadmin, body=body, actor="test", runner="cli")
    seen: list[tuple[int, int]] = []
    status = await sweep_service.execute_sweep(kadmin, sweep_id=row["id"], owner=runner_identity("cli"),
                                               workers=0, on_progress=lambda d, t: seen.append((d, t)))
    assert (status, dropped) == ("done", 0)
    assert seen[-1] == (4, 4)
    detail = await sweep_service.get_sweep(kadmin, sweep_id=row["id"])
    assert detail.trials_done == 4 and detail.status == "done" and detail.runner == "cli"

    # Progress reaches /ws: every change of the sweep row is a run_progress outbox event, shaped as GET shows it.
    from gordon_manager.events.wire import row_data

    events = await kadmin.fetch("SELECT channel, payload FROM trading.events WHERE payload->>'table' = "
                                "'backtest_sweeps' AND (payload->'row'->>'id')::bigint = $1 ORDER BY id", row["id"])
    assert {e["channel"] for e in events} == {"run_progress"}
    shown = [row_data(e["payload"]["table"], e["payload"]["row"]) for e in events]
    assert [s["status"] for s in shown][0] == "queued" and shown[-1]["status"] == "done"
    assert shown[-1]["trialsDone"] == 4 and shown[-1]["progress"] == 1.0
    assert shown[-1]["bestTrial"] == detail.best_trial and shown[-1]["execution"]["takerFeeBps"] == "5"
    listed = detail.model_dump(mode="json", by_alias=True)
    assert {k: listed[k] for k in shown[-1] if k not in ("createdAt", "startedAt", "finishedAt", "from", "to")} == \
        {k: v for k, v in shown[-1].items() if k not in ("createdAt", "startedAt", "finishedAt", "from", "to")}


# -- the `gordon-manager sweep` command ------------------------------------------------------------
def sweep_args(kline_db, *extra: str) -> list[str]:
    ts = kline_db.series.ts
    return ["sweep", "--strategy", "sma_crossover", "--symbol", "BTCUSDT", "--interval", "1m",
            "--from", iso(int(ts[0])), "--to", iso(int(ts[4000])), *extra]


def test_sweep_command_runs_the_grid_and_prints_the_ranking(cli_env, kline_db):
    from typer.testing import CliRunner

    from gordon_manager.cli import app as cli_app
    from tests.backtests.test_worker import fetch

    result = CliRunner().invoke(cli_app, sweep_args(kline_db, "--grid", '{"fast": [5, 10, 50], "slow": [20, 40]}',
                                                    "--min-trades", "3", "--workers", "1", "--fee-bps", "5",
                                                    "--top", "3"))
    assert result.exit_code == 0, result.output
    row = fetch(kline_db.db.admin_url, "SELECT * FROM trading.backtest_sweeps WHERE runner = 'cli' ORDER BY id DESC "
                                       "LIMIT 1")
    assert (row["status"], row["trials_done"], row["trials_total"], row["created_by"]) == ("done", 4, 4, "cli")
    assert f"sweep {row['id']}: done, 4/4 trials, by sharpe (min 3 trades)" in result.stdout
    assert "2 parameter sets refused by the strategy were not run" in result.stderr
    best = fetch(kline_db.db.admin_url, "SELECT n, params FROM trading.backtest_sweep_trials WHERE sweep_id = $1 "
                                        "AND feasible ORDER BY value DESC, n LIMIT 1", row["id"])
    params = json.loads(best["params"])
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("│")]
    cells = [c.strip() for c in lines[0].split("│")[1:5]]
    assert cells == ["1", str(best["n"]), str(params["fast"]), str(params["slow"])]


def test_sweep_command_searches_and_refuses_bad_input(cli_env, kline_db):
    from typer.testing import CliRunner

    from gordon_manager.cli import app as cli_app

    result = CliRunner().invoke(cli_app, sweep_args(kline_db, "--search", '{"fast": {"min": 2, "max": 9}}',
                                                    "--trials", "3", "--seed", "5", "--workers", "0",
                                                    "--objective", "totalReturn"))
    assert result.exit_code == 0, result.output
    assert "3/3 trials, by totalReturn" in result.stdout
    for args, message in [((), "give either --grid or --search"),
                          (("--grid", "{nope"), "--grid is not valid JSON"),
                          (("--grid", "[1]"), "--grid must be a JSON object"),
                          (("--grid", '{"fast": [5]}', "--objective", "luck"), "invalid sweep: objective"),
                          (("--grid", '{"nope": [5]}'), "sma_crossover has no param 'nope'")]:
        refused = CliRunner().invoke(cli_app, sweep_args(kline_db, *args))
        assert refused.exit_code == 2, refused.output
        assert message in refused.stderr


async def test_a_stopping_manager_fails_its_running_sweep_promptly(kadmin, kline_db):
    from gordon_manager.db.connect import create_pool

    ts = kline_db.big.ts
    body = SweepCreate.model_validate(sweep_body(kline_db, symbol="ETHUSDT", **{"from": iso(int(ts[0])),
                                                                               "to": iso(int(ts[200_000]))},
                                                 grid={"fast": list(range(2, 12)), "slow": list(range(20, 220, 10))}))
    row, _ = await sweep_service.create_sweep(kadmin, body=body, actor="test")
    pool = await create_pool(kline_db.db.manager_url, min_size=1, max_size=2)
    runner = sweep_service.SweepRunner(pool=pool, workers=1)
    task = asyncio.create_task(runner.run())
    try:
        async def running():
            return await kadmin.fetchval("SELECT status = 'running' AND trials_done > 0 FROM trading.backtest_sweeps "
                                         "WHERE id = $1", row["id"])

        await wait_for(running, timeout=120)
        runner.stop()
        await asyncio.wait_for(task, timeout=15)  # the chunks in flight are not waited for
    finally:
        task.cancel()
        await pool.close()
    ended = await kadmin.fetchrow("SELECT status, error, trials_done FROM trading.backtest_sweeps WHERE id = $1",
                                  row["id"])
    assert (ended["status"], ended["error"]) == ("failed", sweep_service.STOP_REASON)
    assert runner.statuses[row["id"]] == "failed"


async def test_the_leading_replica_fails_sweeps_whose_manager_stopped_heartbeating(kadmin, kline_db):
    from gordon_manager.db.connect import create_pool

    rows = []
    for runner, age in (("manager", 120), ("manager", 0), ("cli", 120)):
        row, _ = await sweep_service.create_sweep(kadmin, body=SweepCreate.model_validate(sweep_body(kline_db)),
                                                  actor="test", runner=runner)
        await kadmin.execute("UPDATE trading.backtest_sweeps SET status = 'running', heartbeat_at = now() - "
                             "$2 * interval '1 second' WHERE id = $1", row["id"], age)
        rows.append(row["id"])
    dead, alive, cli = rows
    pool = await create_pool(kline_db.db.manager_url, min_size=1, max_size=2)
    try:
        follower = sweep_service.SweepRunner(pool=pool, workers=0, stale_after_s=30)
        assert await follower.recover_stale(now=100.0) == []  # not leading: nothing
        leader = sweep_service.SweepRunner(pool=pool, workers=0, stale_after_s=30, leads=lambda: True)
        assert dead in await leader.recover_stale(now=100.0)
        assert await leader.recover_stale(now=105.0) == []  # at most every third of stale_after_s
    finally:
        await pool.close()
    statuses = {r["id"]: (r["status"], r["error"]) for r in await kadmin.fetch(
        "SELECT id, status, error FROM trading.backtest_sweeps WHERE id = ANY($1::bigint[])", rows)}
    assert statuses == {dead: ("failed", sweep_service.RESTART_REASON), alive: ("running", None),
                        cli: ("running", None)}
    await kadmin.execute("UPDATE trading.backtest_sweeps SET status = 'cancelled' WHERE id = ANY($1::bigint[])",
                         [alive, cli])


# -- walk-forward ----------------------------------------------------------------------------------
def windows(folds) -> list[tuple[int, int, int, int]]:
    return [(f.train_first, f.train_end, f.test_first, f.test_end) for f in folds]


def test_fold_windows_rolling_and_anchored():
    from gordon_manager.backtests.walkforward import fold_layout

    # testFraction: 4 test windows of floor(1000 * 0.2 / 4) = 50 bars; the first train window takes the rest
    assert windows(fold_layout(1000, folds=4, mode="rolling", test_fraction=0.2)) == [
        (0, 800, 800, 850), (50, 850, 850, 900), (100, 900, 900, 950), (150, 950, 950, 1000)]
    assert windows(fold_layout(1000, folds=4, mode="anchored", test_fraction=0.2)) == [
        (0, 800, 800, 850), (0, 850, 850, 900), (0, 900, 900, 950), (0, 950, 950, 1000)]
    # 1003 bars: floor(1003 * 0.3 / 3) = 100 per test window, 703 to train: still ends on the last bar
    assert windows(fold_layout(1003, folds=3, test_fraction=0.3)) == [
        (0, 703, 703, 803), (100, 803, 803, 903), (200, 903, 903, 1003)]
    # bar counts: the folds end at the last bar, the bars before the first train window are unused
    assert windows(fold_layout(1000, folds=3, mode="rolling", train_bars=500, test_bars=100)) == [
        (200, 700, 700, 800), (300, 800, 800, 900), (400, 900, 900, 1000)]
    assert windows(fold_layout(1000, folds=3, mode="anchored", train_bars=500, test_bars=100)) == [
        (200, 700, 700, 800), (200, 800, 800, 900), (200, 900, 900, 1000)]
    assert windows(fold_layout(800, folds=3, train_bars=500, test_bars=100)) == [
        (0, 500, 500, 600), (100, 600, 600, 700), (200, 700, 700, 800)]


def test_fold_windows_that_do_not_fit_name_the_setting():
    from gordon_manager.backtests.walkforward import FoldLayoutError, fold_layout

    with pytest.raises(FoldLayoutError, match="801 bars; the range has 800") as info:
        fold_layout(800, folds=3, train_bars=501, test_bars=100)
    assert info.value.member == "trainBars"
    with pytest.raises(FoldLayoutError) as info:
        fold_layout(10, folds=5, test_fraction=0.2)
    assert info.value.member == "testFraction"


def test_degradation_is_computed_from_the_folds():
    from gordon_manager.backtests.walkforward import summary

    folds = [{"is_value": 2.0, "oos_value": 1.0, "oos_stats": {"total_return": 0.10}, "done": True},
             {"is_value": 4.0, "oos_value": -1.0, "oos_stats": {"total_return": -0.05}, "done": True},
             {"is_value": -1.0, "oos_value": 0.5, "oos_stats": {"total_return": 0.02}, "done": True},
             {"is_value": None, "oos_value": None, "oos_stats": None, "done": True}]
    got = summary(folds, total_folds=5)
    assert (got["folds"], got["folds_done"], got["folds_compared"]) == (5, 4, 3)
    assert got["in_sample_mean"] == pytest.approx(5.0 / 3) and got["out_of_sample_mean"] == pytest.approx(0.5 / 3)
    assert got["ratio_mean"] == pytest.approx((0.5 - 0.25) / 2)  # the fold whose in-sample value is < 0 has none
    assert got["ratio_of_means"] == pytest.approx(0.1)
    assert got["out_of_sample_return"] == pytest.approx(1.10 * 0.95 * 1.02 - 1)
    assert summary([], total_folds=2)["ratio_mean"] is None


WF_GRID = {"fast": [3, 5, 10], "slow": [20, 40]}


def expected_folds(kline_db, grid, *, first: int, windows_: list[tuple[int, int, int, int]], min_trades: int):
    """Each fold's in-sample pick and out-of-sample stats, computed here from the bars of its windows."""
    series = kline_db.series
    trials = sweep.grid_trials(SMA, grid)[0]
    out = []
    for train_first, train_end, test_first, test_end in windows_:
        train = series.slice(first + train_first, first + train_end)
        scored = []
        for n, params in enumerate(trials):
            stats = sweep.trial_stats(train, "sma_crossover", params, CONFIG)
            if stats["trade_count"] >= min_trades and sweep.objective_value(stats, "sharpe") is not None:
                scored.append((stats["sharpe"], -n, n, params, stats))
        _, _, n, params, is_stats = max(scored)
        test = series.slice(first + test_first, first + test_end)
        out.append((n, params, is_stats, sweep.trial_stats(test, "sma_crossover", params, CONFIG)))
    return out


async def test_a_walk_forward_sweep_reports_each_fold_and_the_degradation(kclient, kadmin, kline_db,
                                                                          operator_headers):
    walk = {"folds": 3, "mode": "rolling", "trainBars": 1500, "testBars": 600}
    body = sweep_body(kline_db, start=1000, stop=5000, grid=WF_GRID, minTrades=3, walkForward=walk)
    response = await kclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    assert response.json()["trialsTotal"] == 6
    row = await wait_sweep(kadmin, sweep_id)
    assert row["status"] == "done", row["error"]
    assert row["fold_trials_done"] == 18

    detail = (await kclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    assert detail["walkForward"] == {"folds": 3, "mode": "rolling", "testFraction": None, "trainBars": 1500,
                                     "testBars": 600}
    assert (detail["trialsDone"], detail["progress"]) == (6, 1.0)
    assert len(detail["trials"]) == 6 and detail["best"] is not None  # the whole range's ranking, as before

    # 4000 bars: 1500 + 3 × 600 = 3300 used, the first 700 not; rolling train windows of 1500 bars
    layout = [(700, 2200, 2200, 2800), (1300, 2800, 2800, 3400), (1900, 3400, 3400, 4000)]
    ts = kline_db.series.ts
    folds = detail["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2] and all(f["done"] for f in folds)
    for f, (train_first, train_end, test_first, test_end) in zip(folds, layout, strict=True):
        assert (f["trainBars"], f["testBars"]) == (train_end - train_first, test_end - test_first)
        assert f["trainFrom"] == iso(int(ts[1000 + train_first])) and f["trainTo"] == iso(int(ts[1000 + train_end]))
        assert f["testFrom"] == f["trainTo"] and f["testTo"] == iso(int(ts[1000 + test_end]))
    assert folds[-1]["testTo"] == body["to"]

    expected = expected_folds(kline_db, WF_GRID, first=1000, windows_=layout, min_trades=3)
    series = kline_db.series
    for f, (n, params, is_stats, oos_stats), window in zip(folds, expected, layout, strict=True):
        assert (f["bestTrial"], f["params"]) == (n, params)
        assert f["inSampleStats"] == RunStats.model_validate(is_stats).model_dump(mode="json", by_alias=True)
        assert f["inSampleValue"] == pytest.approx(is_stats["sharpe"])
        # out-of-sample: the test window's bars only, bit for bit...
        assert f["outOfSampleStats"] == RunStats.model_validate(oos_stats).model_dump(mode="json", by_alias=True)
        assert f["outOfSampleValue"] == pytest.approx(oos_stats["sharpe"])
        assert f["ratio"] == (pytest.approx(oos_stats["sharpe"] / is_stats["sharpe"]) if is_stats["sharpe"] > 0
                              else None)
        # ...and not the test window with the train window's last bars in front (its warm-up would differ)
        warmed = sweep.trial_stats(series.slice(1000 + window[2] - 300, 1000 + window[3]), "sma_crossover", params,
                                   CONFIG)
        assert warmed["total_return"] != oos_stats["total_return"]

    deg = detail["degradation"]
    is_values = [f["inSampleValue"] for f in folds]
    oos_values = [f["outOfSampleValue"] for f in folds]
    ratios = [f["ratio"] for f in folds if f["ratio"] is not None]
    assert (deg["folds"], deg["foldsDone"], deg["foldsCompared"]) == (3, 3, 3)
    assert deg["inSampleMean"] == pytest.approx(sum(is_values) / 3)
    assert deg["outOfSampleMean"] == pytest.approx(sum(oos_values) / 3)
    assert deg["ratioMean"] == (pytest.approx(sum(ratios) / len(ratios)) if ratios else None)
    growth = math.prod(1 + e[3]["total_return"] for e in expected)
    assert deg["outOfSampleReturn"] == pytest.approx(growth - 1)

    # a plain sweep has no folds; the list shows the settings
    listed = (await kclient.get("/backtests/sweeps", params={"limit": 1})).json()["items"][0]
    assert listed["id"] == sweep_id and listed["walkForward"]["folds"] == 3


async def test_an_anchored_walk_forward_grows_its_train_window(kadmin, kline_db):
    body = SweepCreate.model_validate(sweep_body(kline_db, start=0, stop=3000, grid=WF_GRID, minTrades=0,
                                                 walkForward={"folds": 2, "mode": "anchored", "testFraction": 0.4}))
    row, _ = await sweep_service.create_sweep(kadmin, body=body, actor="test", runner="cli")
    seen: list[tuple[int, int]] = []
    status = await sweep_service.execute_sweep(kadmin, sweep_id=row["id"], owner=runner_identity("cli"),
                                               workers=0, on_progress=lambda d, t: seen.append((d, t)))
    assert status == "done"
    assert seen[-1] == (18, 18)  # 6 trials over the range, then 6 per fold
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    detail = await sweep_service.get_sweep(kadmin, sweep_id=row["id"])
    assert detail.walk_forward.test_fraction == 0.4 and detail.progress == 1.0
    # floor(3000 * 0.4 / 2) = 600 per test window; anchored train windows start at the first bar
    ts = kline_db.series.ts
    got = [(f.train_from, f.train_to, f.test_from, f.test_to, f.train_bars, f.test_bars) for f in detail.folds]
    from tests.marketdata.fixtures import at

    assert got == [(at(int(ts[0])), at(int(ts[1800])), at(int(ts[1800])), at(int(ts[2400])), 1800, 600),
                   (at(int(ts[0])), at(int(ts[2400])), at(int(ts[2400])), at(int(ts[3000])), 2400, 600)]
    expected = expected_folds(kline_db, WF_GRID, first=0, windows_=[(0, 1800, 1800, 2400), (0, 2400, 2400, 3000)],
                              min_trades=0)
    assert [(f.best_trial, f.out_of_sample_stats.total_return) for f in detail.folds] == \
        [(n, oos["total_return"]) for n, _, _, oos in expected]

    # the folds' progress reaches /ws like the trials' (run_progress events shaped as SweepRead)
    from gordon_manager.events.wire import row_data

    events = await kadmin.fetch("SELECT payload FROM trading.events WHERE payload->>'table' = 'backtest_sweeps' "
                                "AND (payload->'row'->>'id')::bigint = $1 ORDER BY id", row["id"])
    shown = [row_data("backtest_sweeps", e["payload"]["row"]) for e in events]
    assert shown[-1]["status"] == "done" and shown[-1]["progress"] == 1.0
    assert shown[-1]["walkForward"] == detail.walk_forward.model_dump(mode="json", by_alias=True)
    assert "foldTrialsDone" not in shown[-1]  # the model's shape, not the raw columns


async def test_walk_forward_requests_are_checked(kclient, kline_db, operator_headers):
    async def field(walk: dict, **overrides) -> str:
        body = sweep_body(kline_db, walkForward=walk, **{"grid": WF_GRID, **overrides})
        return problem(await kclient.post("/backtests/sweeps", json=body, headers=operator_headers),
                       422)["errors"][0]["field"]

    assert await field({"folds": 0}) == "walkForward.folds"
    assert await field({"folds": 21}) == "walkForward.folds"
    assert await field({"folds": 3, "mode": "expanding"}) == "walkForward.mode"
    assert await field({"folds": 3, "testFraction": 1.5}) == "walkForward.testFraction"
    assert await field({"folds": 3, "trainBars": 100}) == "walkForward.testBars"
    assert await field({"folds": 3, "testFraction": 0.2, "trainBars": 100, "testBars": 50}) == "walkForward.testBars"
    assert await field({"folds": 3, "nope": 1}) == "walkForward.nope"
    # against the range's 4000 bars
    assert await field({"folds": 3, "trainBars": 3000, "testBars": 400}) == "walkForward.trainBars"
    assert await field({"folds": 20, "testFraction": 0.001}) == "walkForward.testFraction"
    # too many trial runs over the folds (checked before anything is queued)
    big = SweepCreate.model_validate(sweep_body(kline_db, grid={"fast": list(range(2, 50)),
                                                                "slow": list(range(50, 300))},
                                                walkForward={"folds": 20}))
    with pytest.raises(Unprocessable, match="12000 trials × 20 folds") as info:
        await sweep_service.plan_folds(None, big, trials=12_000)
    assert info.value.extra["errors"][0]["field"] == "walkForward.folds"


async def _detail(kline_db, sweep_id: int):
    import asyncpg

    from gordon_manager.db.connect import init_connection

    conn = await asyncpg.connect(kline_db.db.admin_url)
    try:
        await init_connection(conn)
        return await sweep_service.get_sweep(conn, sweep_id=sweep_id)
    finally:
        await conn.close()


def test_sweep_command_walks_forward_and_prints_the_folds(cli_env, kline_db):
    from typer.testing import CliRunner

    from gordon_manager.cli import app as cli_app
    from tests.backtests.test_worker import fetch

    result = CliRunner().invoke(cli_app, sweep_args(kline_db, "--grid", json.dumps(WF_GRID), "--workers", "0",
                                                    "--walk-forward", "2", "--anchored", "--train-bars", "2000",
                                                    "--test-bars", "1000", "--fee-bps", "5"))
    assert result.exit_code == 0, result.output
    row = fetch(kline_db.db.admin_url, "SELECT * FROM trading.backtest_sweeps WHERE runner = 'cli' ORDER BY id DESC "
                                       "LIMIT 1")
    assert row["status"] == "done" and json.loads(row["walk_forward"])["mode"] == "anchored"
    out = result.stdout
    assert "walk-forward: 2 anchored folds" in out and "by sharpe" in out
    assert "sweep 1: done, 6/6 trials" in out or ", 6/6 trials, by sharpe" in out
    ts = kline_db.series.ts
    from tests.marketdata.fixtures import at

    def when(i: int) -> str:
        return f"{at(int(ts[i])):%Y-%m-%d %H:%M}"

    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")]
    # the windows (anchored: both train windows start at the first bar), then the picks
    assert ["0", when(0), when(2000), when(3000), "2,000/1,000"] in rows
    assert ["1", when(0), when(3000), when(4000), "3,000/1,000"] in rows
    detail = asyncio.run(_detail(kline_db, row["id"]))
    for f in detail.folds:
        assert [str(f.fold), str(f.best_trial), str(f.params["fast"]), str(f.params["slow"]),
                f"{f.in_sample_value:.3f}", f"{f.out_of_sample_value:.3f}"] in [r[:6] for r in rows]
    assert "degradation over 2/2 folds" in " ".join(out.split())

    for args, message in [(("--anchored",), "need --walk-forward FOLDS"),
                          (("--walk-forward", "2", "--train-bars", "100"), "give trainBars and testBars together"),
                          (("--walk-forward", "2", "--train-bars", "3900", "--test-bars", "100"),
                           "the range has 4000")]:
        refused = CliRunner().invoke(cli_app, sweep_args(kline_db, "--grid", json.dumps(WF_GRID), *args))
        assert refused.exit_code == 2, refused.output
        assert message in refused.stderr


async def test_a_cancel_during_the_folds_keeps_the_finished_ones(kclient, kadmin, kline_db, operator_headers):
    ts = kline_db.big.ts
    body = sweep_body(kline_db, symbol="ETHUSDT", **{"from": iso(int(ts[0])), "to": iso(int(ts[150_000]))},
                      grid={"fast": [5, 10], "slow": [40, 80]}, minTrades=0,
                      walkForward={"folds": 4, "mode": "anchored", "testFraction": 0.5})
    response = await kclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]

    async def folding():  # the trials over the range are done, the folds' windows are known
        return await kadmin.fetchval("SELECT count(*) FROM trading.backtest_sweep_folds WHERE sweep_id = $1",
                                     sweep_id) == 4

    await wait_for(folding, timeout=120)
    cancel = await kclient.post(f"/backtests/sweeps/{sweep_id}/cancel", headers=operator_headers)
    assert cancel.status_code == 202, cancel.text
    row = await wait_sweep(kadmin, sweep_id, timeout=60)
    assert row["status"] == "cancelled" and row["trials_done"] == 4 and row["fold_trials_done"] < 16
    detail = (await kclient.get(f"/backtests/sweeps/{sweep_id}")).json()
    assert len(detail["folds"]) == 4 and not all(f["done"] for f in detail["folds"])
    assert detail["progress"] < 1.0 and detail["degradation"]["foldsDone"] == sum(f["done"] for f in detail["folds"])
    for f in detail["folds"]:  # a fold not done shows its windows only
        assert f["done"] or (f["bestTrial"] is None and f["outOfSampleStats"] is None)
