"""One representation of every value: the same row read over /ws and over HTTP gives the same JSON.

For each channel a row is written, received over /ws, and the same entity read over HTTP; the fields
both show must be identical JSON values (decimals as plain strings with their scale, UTC ``Z`` times,
rounded progress, user keys as written). ``risk_halt`` and ``breaker_state`` have no HTTP read: their
event is compared with the row read by asyncpg through the same model (what an HTTP read would do)
and, for breakers, with the subscribe snapshot. Every frame also validates against asyncapi.yaml.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from gordon_manager.events.wire import BreakerStateRow, RiskHaltRow
from tests.conftest import TEST_OPERATOR_TOKEN
from tests.events.helpers import Client, ws_client
from tests.events.test_asyncapi import message_schema, validate

EPOCH_MS = 1709251560480  # 2024-03-01T00:06:00.480Z


@pytest.fixture
async def http(manager):
    async with httpx.AsyncClient(base_url=manager.http_url, headers={"X-Operator-Token": TEST_OPERATOR_TOKEN},
                                 timeout=10) as client:
        yield client


@pytest.fixture
async def ws(manager):
    async with ws_client(manager.ws_url) as client:
        yield client


async def event_of(client: Client, channel: str, match: Callable[[dict], bool], timeout: float = 10.0) -> dict:
    """The next event of ``channel`` whose data matches (other writers' rows are skipped); checked against
    asyncapi.yaml."""
    while True:
        for event in await client.events(1, timeout=timeout):
            if event["channel"] == channel and match(event["data"]):
                assert validate({"type": "event", **event}, message_schema("event")) == [], event
                return event


def same_common_fields(ws: dict[str, Any], http: dict[str, Any], *, at_least: set[str],
                       ignore: frozenset[str] = frozenset()) -> set[str]:
    """Assert the fields both sides show are equal (and that they include ``at_least``); returns them."""
    common = (set(ws) & set(http)) - ignore
    assert at_least <= common, f"missing on one side: {at_least - common}"
    assert {k: ws[k] for k in common} == {k: http[k] for k in common}
    return common


async def create_bot(http: httpx.AsyncClient, **overrides) -> dict:
    body = {"name": f"eq-{uuid.uuid4().hex[:8]}", "strategy": "sma_crossover", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"fast": 5, "slow": 20}, "mode": "paper",
            "execution": {"initialCash": "2500.50", "takerFeeBps": 7.5, "qtyStep": "1E-8"},
            "labels": {"team_name": "alpha", "BTC_USDT": "watch"}, **overrides}
    response = await http.post("/bots", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_bot_config_changed(ws, http):
    await ws.subscribe(["bot_config_changed"])
    bot = await create_bot(http)
    event = await event_of(ws, "bot_config_changed", lambda d: d["id"] == bot["id"])
    read = (await http.get(f"/bots/{bot['id']}")).json()
    same_common_fields(event["data"], read, at_least={
        "id", "name", "params", "execution", "labels", "version", "specVersion", "createdAt", "updatedAt",
        "desiredState", "flattenOnStop"})
    assert event["data"]["labels"] == {"team_name": "alpha", "BTC_USDT": "watch"}  # a user's keys, as written
    assert event["data"]["execution"]["qtyStep"] == "0.00000001"
    assert event["data"]["execution"]["initialCash"] == "2500.50"
    assert "status" not in event["data"] and "position" not in event["data"]
    # a change: the update event equals the read again
    response = await http.put(f"/bots/{bot['id']}", headers={"If-Match": f'"{read["version"]}"'},
                              json={k: read[k] for k in ("name", "strategy", "symbol", "interval", "params",
                                                         "execution", "mode", "image")}
                              | {"labels": {"team_name": "beta"}})
    assert response.status_code == 200, response.text
    event = await event_of(ws, "bot_config_changed", lambda d: d["id"] == bot["id"] and d["labels"] != read["labels"])
    same_common_fields(event["data"], (await http.get(f"/bots/{bot['id']}")).json(), at_least={"labels", "version"})
    # the audit trail keeps the user's label keys too (its own field names are camelCase)
    [change, *_] = (await http.get(f"/bots/{bot['id']}/audit")).json()["items"]
    assert change["diff"]["labels"] == {"before": {"team_name": "alpha", "BTC_USDT": "watch"},
                                        "after": {"team_name": "beta"}}
    assert change["after"]["labels"] == {"team_name": "beta"} and "desiredState" in change["after"]


async def test_bot_status(ws, http, admin):
    await ws.subscribe(["bot_status"])
    bot = await create_bot(http)
    await admin.execute(
        "INSERT INTO trading.bot_status (bot_id, observed_state, runtime, restarts, backoff_s, running_since, "
        "last_error, last_error_at, failure_times) VALUES ($1, 'backoff', 'process', 2, 2.5, "
        "'2026-05-17 12:00:00.25+02', 'exit 1', now(), ARRAY[now()]) "
        "ON CONFLICT (bot_id) DO UPDATE SET observed_state = 'backoff', restarts = 2, backoff_s = 2.5, "
        "running_since = '2026-05-17 12:00:00.25+02', last_error = 'exit 1', last_error_at = now(), "
        "failure_times = ARRAY[now()]", bot["id"])
    event = await event_of(ws, "bot_status", lambda d: d["botId"] == bot["id"] and d["observedState"] == "backoff")
    status = (await http.get(f"/bots/{bot['id']}")).json()["status"]
    same_common_fields(event["data"], status, at_least={
        "observedState", "restarts", "backoffS", "runningSince", "lastError", "lastErrorAt", "updatedAt"})
    assert event["data"]["runningSince"] == "2026-05-17T10:00:00.250000Z"
    assert all(t.endswith("Z") for t in event["data"]["failureTimes"])


async def test_bot_events(ws, http, admin):
    await ws.subscribe(["bot_events"])
    bot = await create_bot(http)
    await admin.execute(
        "INSERT INTO trading.bot_events (bot_id, kind, level, message, data) VALUES ($1, 'fill', 'info', 'buy', "
        "jsonb_build_object('client_order_id', 'gb1-0', 'qty', '0.00000001', 'ts', $2::bigint, 'side', 'buy'))",
        bot["id"], EPOCH_MS)
    await admin.execute(
        "INSERT INTO trading.bot_events (bot_id, kind, level, message, data) VALUES ($1, 'run_abandoned', 'warning', "
        "'gone', jsonb_build_object('last_heartbeat_at', '2026-05-17 12:00:00+02'::timestamptz))", bot["id"])
    for kind, data in (("fill", {"clientOrderId": "gb1-0", "qty": "0.00000001", "side": "buy",
                                 "ts": "2024-03-01T00:06:00.480000Z"}),
                       ("run_abandoned", {"lastHeartbeatAt": "2026-05-17T10:00:00Z"})):
        event = await event_of(ws, "bot_events", lambda d, k=kind: d["botId"] == bot["id"] and d["kind"] == k)
        [read] = (await http.get(f"/bots/{bot['id']}/events", params={"kind": kind})).json()["items"]
        same_common_fields(event["data"], read, at_least={"id", "botId", "kind", "level", "message", "data", "at"})
        assert event["data"] == read
        # the manager's own data, typed by kind: camelCase, times RFC 3339 UTC (the epoch-ms ts of older rows too)
        assert event["data"]["data"] == data


async def test_portfolio_state(ws, http, bot_id, admin):
    await ws.subscribe(["portfolio_state"])
    symbol = f"EQ{uuid.uuid4().hex[:6].upper()}"
    await admin.execute(
        "INSERT INTO trading.portfolio_state (bot_id, symbol, qty, avg_entry_price, cash, mark_price, exposure, "
        "unrealized_pnl) VALUES ($1, $2, 0.00000001, 60000.5, 1000.10, NULL, 0.000600005, -0.00)", bot_id, symbol)
    event = await event_of(ws, "portfolio_state", lambda d: d["symbol"] == symbol)
    portfolio = (await http.get("/portfolio")).json()
    [position] = [p for b in portfolio["bots"] for p in b["positions"] if p["symbol"] == symbol]
    same_common_fields(event["data"], position, at_least={
        "symbol", "qty", "avgEntryPrice", "markPrice", "cash", "exposure", "unrealizedPnl", "updatedAt"})
    assert (event["data"]["qty"], event["data"]["cash"], event["data"]["unrealizedPnl"]) == (
        "0.00000001", "1000.10", "0.00")  # exact, plain, the stored scale (was 1e-08 and 1000.1 over /ws)


async def test_source_freshness(ws, http, admin):
    await ws.subscribe(["source_freshness"])
    source = f"src-{uuid.uuid4().hex[:8]}"
    await admin.execute(
        "INSERT INTO trading.source_freshness (source, last_update_at, last_data_at, stale_after_seconds, detail) "
        "VALUES ($1, now(), '2026-05-17 12:00:00.123+02', 600, '{\"lag_ms\": 12, \"BTC_USDT\": {\"rows_behind\": 3}}')",
        source)
    event = await event_of(ws, "source_freshness", lambda d: d["source"] == source)
    [health] = [s for s in (await http.get("/source-health")).json()["sources"] if s["source"] == source]
    same_common_fields(event["data"], health, at_least={"source", "lastUpdateAt", "lastDataAt", "detail",
                                                        "staleAfterSeconds"})
    assert event["data"]["detail"] == {"lag_ms": 12, "BTC_USDT": {"rows_behind": 3}}  # the source's keys


async def test_backfill_jobs(ws, http, admin):
    await ws.subscribe(["backfill_jobs"])
    source = f"bf-{uuid.uuid4().hex[:8]}"
    job = await admin.fetchval(
        "INSERT INTO trading.backfill_jobs (source, symbol, interval, range_start, status, progress, rows_written) "
        "VALUES ($1, 'BTCUSDT', '1m', '2024-01-01 00:00+00', 'running', 0.5505372000000001, 17856) RETURNING id",
        source)
    event = await event_of(ws, "backfill_jobs", lambda d: d["id"] == job)
    [read] = (await http.get("/data/backfill/jobs", params={"source": source})).json()["items"]
    same_common_fields(event["data"], read, at_least={"id", "progress", "rowsWritten", "rangeStart", "createdAt"})
    assert event["data"] == read and read["progress"] == 0.5505


async def test_run_progress(ws, http, bot_id, admin):
    await ws.subscribe(["run_progress"])
    run = await admin.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, params, symbol, interval, range_start, config, "
        "progress, stats, runner) VALUES ('backtest', $1, 'running', 'donchian_breakout', "
        "'{\"entry_period\": 20}', 'BTCUSDT', '1m', '2024-01-01 00:00+00', "
        "'{\"qty_step\": \"1E-8\", \"initial_cash\": \"10000\"}', 0.5505372000000001, "
        "'{\"total_return\": 0.12}', 'manager') RETURNING id", bot_id)
    event = await event_of(ws, "run_progress", lambda d: d["id"] == run)
    read = (await http.get(f"/runs/{run}")).json()
    same_common_fields(event["data"], read, at_least={"id", "progress", "params", "config", "stats", "rangeStart",
                                                      "createdAt", "status"})
    assert event["data"]["progress"] == 0.5505
    assert event["data"]["config"] == {"qtyStep": "0.00000001", "initialCash": "10000"}  # was "1E-8"
    assert event["data"]["runner"] == "manager" and "equity" not in event["data"]


async def test_deploy_progress_bot_and_service(ws, http, admin):
    await ws.subscribe(["deploy_progress"])
    bot = await create_bot(http)
    deploy = await admin.fetchval(
        "INSERT INTO trading.bot_deploys (bot_id, from_version, candidate, compare_window, match_threshold, "
        "lease_ttl_s, actor, matches, divergences, min_actions) VALUES ($1, 1, $2::jsonb, 60, 0.95, 30, 'op', 2, 1, "
        "5) RETURNING id", bot["id"],
        orjson.dumps({"strategy": "sma_crossover", "params": {"fast": 8, "slow": 30},
                      "image": "gordon-bot:v2"}).decode())
    event = await event_of(ws, "deploy_progress", lambda d: d["id"] == deploy and d.get("botId") == bot["id"])
    assert event["table"] == "bot_deploys"
    [read] = [d for d in (await http.get(f"/bots/{bot['id']}/deploys")).json()["items"] if d["id"] == deploy]
    same_common_fields(event["data"], read, at_least={"candidate", "matchThreshold", "maxWindow", "matchRate",
                                                      "evidenceNeeded", "startedAt"})
    assert event["data"] == read
    service = f"svc-{uuid.uuid4().hex[:8]}"
    sdeploy = await admin.fetchval(
        "INSERT INTO trading.service_deploys (service, new_image, health_check, actor) VALUES ($1, 'r:2', "
        "'{\"http_path\": \"/health\", \"port\": 8080, \"interval_s\": 2.0}', 'op') RETURNING id", service)
    event = await event_of(ws, "deploy_progress", lambda d: d.get("service") == service)
    assert event["table"] == "service_deploys"
    read = (await http.get(f"/deploys/service/{sdeploy}/status")).json()
    same_common_fields(event["data"], read, at_least={"id", "healthCheck", "state", "startedAt"})
    assert event["data"] == read
    assert read["healthCheck"]["httpPath"] == "/health"


async def test_risk_halt_changed_equals_the_row_read_by_asyncpg(ws, admin):
    await ws.subscribe(["risk_halt_changed"])
    scope = f"scope-{uuid.uuid4().hex[:8]}"
    await admin.execute("INSERT INTO trading.risk_halt (scope, halted, reason, actor, updated_at) "
                        "VALUES ($1, true, 'drawdown', 'gordon-risk', '2026-05-17 12:00:00.5+02')", scope)
    event = await event_of(ws, "risk_halt_changed", lambda d: d["scope"] == scope)
    row = await admin.fetchrow("SELECT * FROM trading.risk_halt WHERE scope = $1", scope)
    assert event["data"] == RiskHaltRow.model_validate(dict(row)).model_dump(mode="json", by_alias=True)
    assert event["data"]["updatedAt"] == "2026-05-17T10:00:00.500000Z"


async def test_breaker_state_equals_the_snapshot_and_the_row(manager, ws, admin):
    import json

    await ws.subscribe(["breaker_state"])
    name = f"brk-{uuid.uuid4().hex[:8]}"
    await admin.execute("INSERT INTO trading.breaker_state (breaker, state, reason, tripped_at, data) VALUES "
                        "($1, 'open', 'loss', now(), '{\"loss_pct\": 2.5, \"BTC_USDT\": {\"max_dd\": 0.1}}')", name)
    event = await event_of(ws, "breaker_state", lambda d: d["breaker"] == name)
    row = dict(await admin.fetchrow("SELECT * FROM trading.breaker_state WHERE breaker = $1", name))
    row["data"] = json.loads(row["data"])
    assert event["data"] == BreakerStateRow.model_validate(row).model_dump(mode="json", by_alias=True)
    assert event["data"]["data"] == {"loss_pct": 2.5, "BTC_USDT": {"max_dd": 0.1}}
    async with ws_client(manager.ws_url) as other:
        await other.send({"type": "subscribe", "channels": ["breaker_state"]})
        snapshot = await other.until("snapshot")
    assert validate(snapshot, message_schema("snapshot")) == []
    assert [i for i in snapshot["items"] if i["breaker"] == name] == [event["data"]]
