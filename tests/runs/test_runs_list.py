"""GET /runs, /runs/{id}, /bots/{id}/runs against real rows: filters, paging, 404s and bad parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.runs.helpers import T0, add_points, collect, make_bot, make_run, problem


async def test_list_filters_by_bot_kind_status_strategy_symbol_and_time(api, admin):
    bot = await make_bot(admin)
    other = await make_bot(admin)
    a = await make_run(admin, kind="paper", bot_id=bot, status="running", created_at=T0)
    b = await make_run(admin, kind="backtest", bot_id=bot, status="done", strategy="rsi_reversion",
                       created_at=T0 + timedelta(hours=1))
    c = await make_run(admin, kind="live", bot_id=bot, status="failed", symbol="ETHUSDT",
                       created_at=T0 + timedelta(hours=2))
    await make_run(admin, kind="paper", bot_id=other)

    ids = lambda body: [r["id"] for r in body["items"]]  # noqa: E731
    body = (await api.get("/runs", params={"bot": bot})).json()
    assert ids(body) == [c, b, a] and body["nextCursor"] is None  # newest first
    assert ids((await api.get("/runs", params={"bot": bot, "kind": "paper"})).json()) == [a]
    assert ids((await api.get("/runs", params={"bot": bot, "status": "failed"})).json()) == [c]
    assert ids((await api.get("/runs", params={"bot": bot, "strategy": "rsi_reversion"})).json()) == [b]
    assert ids((await api.get("/runs", params={"bot": bot, "symbol": "ETHUSDT"})).json()) == [c]
    window = {"bot": bot, "from": (T0 + timedelta(minutes=30)).isoformat(), "to": (T0 + timedelta(hours=2)).isoformat()}
    assert ids((await api.get("/runs", params=window)).json()) == [b]  # [from, to)

    item = (await api.get("/runs", params={"bot": bot, "kind": "paper"})).json()["items"][0]
    assert item["botId"] == bot and item["params"] == {"fastPeriod": 10} and item["createdAt"].endswith("Z")
    assert "config" not in item and "stats" not in item


async def test_empty_list_is_a_normal_answer(api, admin):
    bot = await make_bot(admin)
    response = await api.get("/runs", params={"bot": bot})
    assert response.status_code == 200 and response.json() == {"items": [], "nextCursor": None}


async def test_pages_cover_every_run_once_even_while_runs_are_inserted(api, admin):
    bot = await make_bot(admin)
    original = [await make_run(admin, bot_id=bot) for _ in range(23)]
    seen, cursor, inserted = [], None, []
    while True:
        params = {"bot": bot, "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/runs", params=params)).json()
        seen += [r["id"] for r in body["items"]]
        inserted.append(await make_run(admin, bot_id=bot))  # newer than everything: lands before the cursor
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == sorted(original, reverse=True)
    assert len(seen) == len(set(seen))
    # and a fresh walk sees everything, the rows inserted meanwhile first
    assert [r["id"] for r in await collect(api, "/runs", {"bot": bot, "limit": 7})] == sorted(
        original + inserted, reverse=True)


@pytest.mark.parametrize("params", [
    {"kind": "futures"}, {"status": "sleeping"}, {"limit": 0}, {"limit": 1001}, {"bot": 0},
    {"symbol": "btc/usdt"}, {"from": "2024-03-01T00:00:00"},  # no offset: ambiguous
    {"from": "yesterday"},
])
async def test_bad_parameters_are_422_problems(api, params):
    body = problem(await api.get("/runs", params=params), 422)
    assert body["errors"]


async def test_from_after_to_is_a_problem(api):
    body = problem(await api.get("/runs", params={"from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z"}), 422)
    assert "after" in body["detail"]


async def test_modified_or_foreign_cursor_is_a_400(api, admin):
    bot = await make_bot(admin)
    for _ in range(3):
        await make_run(admin, bot_id=bot)
    cursor = (await api.get("/runs", params={"bot": bot, "limit": 1})).json()["nextCursor"]
    assert cursor
    tampered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
    for bad in (tampered, "not-a-cursor", cursor + "x"):
        assert problem(await api.get("/runs", params={"bot": bot, "limit": 1, "cursor": bad}), 400)["type"] == \
            "/problems/bad-cursor"
    # a cursor of one list does not fit another (other filters, other endpoint)
    problem(await api.get("/runs", params={"bot": bot, "kind": "paper", "limit": 1, "cursor": cursor}), 400)
    problem(await api.get(f"/bots/{bot}/events", params={"cursor": cursor}), 400)


async def test_run_detail_has_config_stats_and_equity_summary(api, admin):
    run = await make_run(admin, stats={"total_return": 0.12, "max_drawdown": 0.05})
    await add_points(admin, run, [100.0, 90.0, 120.0, 110.0])
    body = (await api.get(f"/runs/{run}")).json()
    assert body["id"] == run and body["status"] == "done" and body["progress"] == 0
    assert body["config"] == {"initialCash": "10000"}
    assert body["stats"] == {"totalReturn": 0.12, "maxDrawdown": 0.05}
    assert body["equity"] == {"points": 4, "firstAt": "2024-03-01T00:00:00Z", "lastAt": "2024-03-01T00:03:00Z",
                              "firstEquity": "100", "lastEquity": "110", "minEquity": "90", "maxEquity": "120"}


async def test_run_without_points_or_stats(api, admin):
    run = await make_run(admin, kind="paper", status="queued")
    body = (await api.get(f"/runs/{run}")).json()
    assert body["stats"] is None and body["equity"] is None


async def test_unknown_run_is_404(api):
    body = problem(await api.get("/runs/999999999"), 404)
    assert "999999999" in body["detail"]
    problem(await api.get("/runs/0"), 422)


async def test_bot_runs(api, admin):
    bot = await make_bot(admin)
    paper = await make_run(admin, kind="paper", bot_id=bot)
    backtest = await make_run(admin, kind="backtest", bot_id=bot)
    await make_run(admin, kind="paper")
    assert [r["id"] for r in (await api.get(f"/bots/{bot}/runs")).json()["items"]] == [backtest, paper]
    assert [r["id"] for r in (await api.get(f"/bots/{bot}/runs", params={"kind": "paper"})).json()["items"]] == [paper]
    assert [r["id"] for r in await collect(api, f"/bots/{bot}/runs", {"limit": 1})] == [backtest, paper]
    problem(await api.get("/bots/999999999/runs"), 404)
    problem(await api.get(f"/bots/{bot}/runs", params={"kind": "nope"}), 422)
    empty = await make_bot(admin)
    assert (await api.get(f"/bots/{empty}/runs")).json() == {"items": [], "nextCursor": None}


async def test_reads_are_counted_and_timed_by_endpoint(api, admin):
    from prometheus_client import REGISTRY

    def count(endpoint: str) -> float:
        return REGISTRY.get_sample_value("gordon_manager_bff_reads_total", {"endpoint": endpoint}) or 0.0

    before, before_404 = count("runs.list"), count("runs.get")
    await api.get("/runs", params={"limit": 1})
    await api.get("/runs/999999999")
    assert count("runs.list") == before + 1 and count("runs.get") == before_404 + 1
    assert REGISTRY.get_sample_value("gordon_manager_bff_read_duration_seconds_count", {"endpoint": "runs.list"}) >= 1
    text = (await api.get("/metrics")).text
    assert 'gordon_manager_bff_reads_total{endpoint="runs.list"}' in text


async def test_bff_runs_is_the_same_list_as_runs(api, admin, reads_app):
    """The seed's `/bff/runs`: the same handler, filters, cursors and count as `/runs`."""
    from prometheus_client import REGISTRY

    bot = await make_bot(admin)
    for _ in range(3):
        await make_run(admin, kind="paper", bot_id=bot)
    params = {"bot": bot, "kind": "paper", "limit": 2}
    first, alias = (await api.get("/runs", params=params)), (await api.get("/bff/runs", params=params))
    assert alias.status_code == 200 and alias.json() == first.json()
    cursor = alias.json()["nextCursor"]
    rest = await api.get("/runs", params={**params, "cursor": cursor})  # the alias' cursor pages /runs too
    assert rest.status_code == 200 and len(rest.json()["items"]) == 1
    assert (await api.get("/bff/runs", params={**params, "cursor": cursor})).json() == rest.json()
    bad = await api.get("/bff/runs", params={"kind": "nope"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    before = REGISTRY.get_sample_value("gordon_manager_bff_reads_total", {"endpoint": "runs.list"}) or 0.0
    await api.get("/bff/runs", params={"limit": 1})
    assert REGISTRY.get_sample_value("gordon_manager_bff_reads_total", {"endpoint": "runs.list"}) == before + 1
    operation = reads_app.openapi()["paths"]["/bff/runs"]["get"]
    assert "Alias of `GET /runs`" in operation["description"] and not operation.get("deprecated")
