"""Parameter sweeps: trial generation, objectives, heatmap, and POST/GET /backtests/sweeps end to end."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from gordon_manager.backtests import sweep, sweep_service
from gordon_manager.backtests.job import runner_identity
from gordon_manager.backtests.sweep_schemas import SweepCreate
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


async def test_cancel_stops_a_running_sweep_and_keeps_its_finished_trials(kclient, kadmin, kline_db,
                                                                          operator_headers):
    ts = kline_db.big.ts
    body = sweep_body(kline_db, symbol="ETHUSDT", **{"from": iso(int(ts[0])), "to": iso(int(ts[200_000]))},
                      grid={"fast": list(range(2, 12)), "slow": list(range(20, 220, 10))})
    response = await kclient.post("/backtests/sweeps", json=body, headers=operator_headers)
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]

    async def some_done():
        row = await kadmin.fetchrow("SELECT status, trials_done FROM trading.backtest_sweeps WHERE id = $1",
                                    sweep_id)
        return row["status"] == "running" and row["trials_done"] > 0

    await wait_for(some_done, timeout=120)
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
