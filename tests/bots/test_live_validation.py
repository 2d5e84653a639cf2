"""Bots API rules of the live loop: NATS for live bots, replay labels, a held position in the way, flatten.

Two apps share the session's database: ``client`` (no NATS) and ``nats_client`` (GORDON_BUS_NATS_URL
set to an address nothing listens on: the API only checks that it is configured). What a running
bot would have written (its ledger, its orders, its observed state) is seeded with an admin
connection, so the rules are tested without starting a bot.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import make_settings

PROBLEM = "application/problem+json"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
async def nats_client(database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose settings name a NATS server (live bots allowed)."""
    from gordon_manager.app import create_app

    data_dir = tmp_path / "nats-data"
    data_dir.mkdir()
    app = create_app(make_settings(database, data_dir, bus_nats_url="nats://127.0.0.1:1"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as http:
            yield http


@pytest.fixture
async def admin(database) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.admin_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def made(admin) -> AsyncIterator[list[int]]:
    """Ids of the bots a test created: their seeded rows go, and they are soft-deleted, afterwards."""
    ids: list[int] = []
    yield ids
    await admin.execute("DELETE FROM trading.bot_orders WHERE bot_id = ANY($1::bigint[])", ids)
    await admin.execute("DELETE FROM trading.bot_ledgers WHERE bot_id = ANY($1::bigint[])", ids)
    await admin.execute("UPDATE trading.bot_configs SET desired_state = 'stopped', deleted_at = now()"
                        " WHERE id = ANY($1::bigint[])", ids)


def spec(**overrides) -> dict:
    body = {"name": f"lv-{uuid.uuid4().hex[:8]}", "strategy": "donchian_breakout", "symbol": "BTCUSDT",
            "interval": "1m", "params": {"entryPeriod": 3, "exitPeriod": 3}, "mode": "paper"}
    body.update(overrides)
    return body


async def create(http: httpx.AsyncClient, headers: dict, made: list[int], **overrides) -> dict:
    response = await http.post("/bots", json=spec(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    bot = response.json()
    made.append(bot["id"])
    return bot


async def put(http: httpx.AsyncClient, headers: dict, bot: dict, **changes) -> httpx.Response:
    """PUT the bot's current spec with ``changes``, at its current version."""
    current = (await http.get(f"/bots/{bot['id']}")).json()
    body = {k: current[k] for k in ("name", "strategy", "symbol", "interval", "params", "execution", "mode",
                                    "image", "labels")}
    body.update(changes)
    return await http.put(f"/bots/{bot['id']}", json=body,
                          headers={**headers, "If-Match": f'"{current["version"]}"'})


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    return body


async def seed_ledger(admin, bot_id: int, *, mode: str, qty: str, symbol: str = "BTCUSDT", cash: str = "1000",
                      avg: str | None = None, fees: str = "0", realized: str = "0") -> None:
    await admin.execute(
        "INSERT INTO trading.bot_ledgers (bot_id, mode, symbol, qty, avg_entry_price, cash, fees_paid, realized_pnl,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        bot_id, mode, symbol, Decimal(qty), None if avg is None else Decimal(avg), Decimal(cash), Decimal(fees),
        Decimal(realized), T0)


async def seed_order(admin, bot_id: int, coid: str, *, mode: str, status: str, at: datetime, side: str = "sell",
                     order_type: str = "stop", qty: str = "1", price: str | None = "95", filled: str = "0",
                     reason: str = "stop_loss", oco: str | None = None, stop_loss: str | None = None,
                     take_profit: str | None = None) -> None:
    await admin.execute(
        "INSERT INTO trading.bot_orders (client_order_id, bot_id, mode, symbol, side, order_type, qty, price,"
        " reduce_only, oco_group, reason, stop_loss, take_profit, status, filled_qty, created_at)"
        " VALUES ($1, $2, $3, 'BTCUSDT', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        coid, bot_id, mode, side, order_type, Decimal(qty), None if price is None else Decimal(price),
        side == "sell", oco, reason, None if stop_loss is None else Decimal(stop_loss),
        None if take_profit is None else Decimal(take_profit), status, Decimal(filled), at)


async def observe(admin, bot_id: int, state: str) -> None:
    await admin.execute("UPDATE trading.bot_status SET observed_state = $2 WHERE bot_id = $1", bot_id, state)


# -- live needs NATS --------------------------------------------------------------------------------
async def test_live_without_nats_is_422_on_create_and_update(client, operator_headers, made):
    body = problem(await client.post("/bots", json=spec(mode="live"), headers=operator_headers), 422)
    assert "GORDON_BUS_NATS_URL" in body["detail"]
    assert body["errors"] == [{"field": "mode", "message": "live needs GORDON_BUS_NATS_URL"}]

    bot = await create(client, operator_headers, made)
    body = problem(await put(client, operator_headers, bot, mode="live"), 422)
    assert "GORDON_BUS_NATS_URL" in body["detail"]
    assert (await client.get(f"/bots/{bot['id']}")).json()["mode"] == "paper"


async def test_a_live_bot_starts_only_where_nats_is_configured(client, nats_client, operator_headers, made):
    bot = await create(nats_client, operator_headers, made, mode="live")
    assert bot["mode"] == "live" and bot["desiredState"] == "stopped"
    body = problem(await client.post(f"/bots/{bot['id']}/start", headers=operator_headers), 409)
    assert "GORDON_BUS_NATS_URL" in body["detail"] and body["currentState"] == "stopped"
    assert (await client.get(f"/bots/{bot['id']}")).json()["desiredState"] == "stopped"

    started = await nats_client.post(f"/bots/{bot['id']}/start", headers=operator_headers)
    assert started.status_code == 200 and started.json()["desiredState"] == "running"
    # a paper bot never needed NATS
    paper = await create(client, operator_headers, made)
    assert (await client.post(f"/bots/{paper['id']}/start", headers=operator_headers)).status_code == 200
    for bot_id in (bot["id"], paper["id"]):
        assert (await client.post(f"/bots/{bot_id}/stop", headers=operator_headers)).status_code == 200


# -- replay labels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, mode, fields", [
    ({"replay.speed": "fast"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "-1"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "1", "replay.from": "last tuesday"}, "paper", ["labels.replay.from"]),
    ({"replay.speed": "1", "replay.from": "2024-01-01T00:00:00"}, "paper", ["labels.replay.from"]),
    ({"replay.from": "2024-01-01T00:00:00Z"}, "shadow", ["labels.replay.from"]),
    ({"replay.sped": "1"}, "paper", ["labels.replay.sped"]),
])
async def test_invalid_replay_labels_are_422_naming_the_field(client, operator_headers, labels, mode, fields):
    body = problem(await client.post("/bots", json=spec(labels=labels, mode=mode), headers=operator_headers), 422)
    assert [e["field"] for e in body["errors"]] == fields
    assert body["detail"].startswith("invalid labels: ")


async def test_a_live_bot_cannot_replay(nats_client, operator_headers):
    # NATS is configured here, so the labels are the only thing wrong
    body = problem(await nats_client.post("/bots", json=spec(labels={"replay.speed": "1"}, mode="live"),
                                          headers=operator_headers), 422)
    assert [e["field"] for e in body["errors"]] == ["labels"]
    assert "replay" in body["detail"]


async def test_valid_replay_labels_are_kept_and_checked_again_on_update(client, operator_headers, made):
    labels = {"replay.speed": "50", "replay.from": "2024-01-01T00:00:00Z", "team": "alpha"}
    bot = await create(client, operator_headers, made, labels=labels)
    assert bot["labels"] == labels
    body = problem(await put(client, operator_headers, bot, labels={"replay.speed": "0", "replay.to": "x"}), 422)
    assert [e["field"] for e in body["errors"]] == ["labels.replay.to"]


# -- a held position blocks changing what the bot trades ----------------------------------------------
async def test_put_changing_symbol_or_mode_while_holding_is_409_naming_the_position(client, operator_headers, made,
                                                                                   admin):
    bot = await create(client, operator_headers, made)
    await seed_ledger(admin, bot["id"], mode="paper", qty="0.5")
    for change in ({"symbol": "ETHUSDT"}, {"mode": "shadow"}):
        body = problem(await put(client, operator_headers, bot, **change), 409)
        assert body["position"] == {"mode": "paper", "symbol": "BTCUSDT", "qty": "0.5", "openOrders": 0}
        assert "holds 0.5 BTCUSDT" in body["detail"] and "flatten=true" in body["detail"]
    current = (await client.get(f"/bots/{bot['id']}")).json()
    assert (current["symbol"], current["mode"], current["version"]) == ("BTCUSDT", "paper", bot["version"])
    # what it trades with may change: parameters, execution, labels
    changed = await put(client, operator_headers, bot, params={"entryPeriod": 5, "exitPeriod": 3})
    assert changed.status_code == 200, changed.text


async def test_open_orders_alone_also_block_a_symbol_change(client, operator_headers, made, admin):
    bot = await create(client, operator_headers, made)
    await seed_ledger(admin, bot["id"], mode="paper", qty="0")
    await seed_order(admin, bot["id"], f"gb{bot['id']}-1-0", mode="paper", status="cancelling", at=T0)
    body = problem(await put(client, operator_headers, bot, symbol="ETHUSDT"), 409)
    assert body["position"] == {"mode": "paper", "symbol": "BTCUSDT", "qty": "0", "openOrders": 1}
    # once the order is over (and the ledger flat) the change goes through
    await admin.execute("UPDATE trading.bot_orders SET status = 'cancelled' WHERE bot_id = $1", bot["id"])
    moved = await put(client, operator_headers, bot, symbol="ETHUSDT")
    assert moved.status_code == 200 and moved.json()["symbol"] == "ETHUSDT"


async def test_delete_of_a_live_bot_holding_a_position_needs_flatten(nats_client, operator_headers, made, admin):
    bot = await create(nats_client, operator_headers, made, mode="live", desiredState="running")
    await seed_ledger(admin, bot["id"], mode="live", qty="0.25")
    body = problem(await nats_client.delete(f"/bots/{bot['id']}", headers=operator_headers), 409)
    assert body["position"] == {"mode": "live", "symbol": "BTCUSDT", "qty": "0.25", "openOrders": 0}
    assert "cannot delete it" in body["detail"] and "holds 0.25 BTCUSDT" in body["detail"]
    # flattening is the bot's job on its way out: it must be up to do it
    body = problem(await nats_client.delete(f"/bots/{bot['id']}?flatten=true", headers=operator_headers), 409)
    assert body["currentState"] == "pending" and "not running" in body["detail"]
    still = (await nats_client.get(f"/bots/{bot['id']}")).json()
    assert still["deleteRequestedAt"] is None and still["desiredState"] == "running"

    await observe(admin, bot["id"], "running")
    deleted = await nats_client.delete(f"/bots/{bot['id']}?flatten=true", headers=operator_headers)
    assert deleted.status_code == 202, deleted.text
    after = deleted.json()
    assert after["flattenOnStop"] is True and after["desiredState"] == "stopped"
    assert after["deleteRequestedAt"] is not None


async def test_delete_of_a_paper_bot_holding_a_position_goes_through(client, operator_headers, made, admin):
    bot = await create(client, operator_headers, made)
    await seed_ledger(admin, bot["id"], mode="paper", qty="3")
    deleted = await client.delete(f"/bots/{bot['id']}", headers=operator_headers)
    assert deleted.status_code == 202 and deleted.json()["flattenOnStop"] is False


# -- stop ?flatten=true -------------------------------------------------------------------------------
@pytest.mark.parametrize("observed", ["pending", "starting", "stopping", "stopped", "crashed"])
async def test_stop_with_flatten_needs_the_bot_up(client, operator_headers, made, admin, observed):
    bot = await create(client, operator_headers, made, desiredState="running")
    await observe(admin, bot["id"], observed)
    body = problem(await client.post(f"/bots/{bot['id']}/stop?flatten=true", headers=operator_headers), 409)
    assert body["currentState"] == observed
    current = (await client.get(f"/bots/{bot['id']}")).json()
    assert (current["desiredState"], current["flattenOnStop"]) == ("running", False)


@pytest.mark.parametrize("observed", ["running", "paused"])
async def test_stop_with_flatten_is_recorded_and_start_clears_it(client, operator_headers, made, admin, observed):
    bot = await create(client, operator_headers, made, desiredState="running")
    await observe(admin, bot["id"], observed)
    stopped = await client.post(f"/bots/{bot['id']}/stop?flatten=true", headers=operator_headers)
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["desiredState"], stopped.json()["flattenOnStop"]) == ("stopped", True)
    assert (await client.get(f"/bots/{bot['id']}")).json()["flattenOnStop"] is True
    started = await client.post(f"/bots/{bot['id']}/start", headers=operator_headers)
    assert started.status_code == 200 and started.json()["flattenOnStop"] is False
    # a plain stop does not flatten
    plain = await client.post(f"/bots/{bot['id']}/stop", headers=operator_headers)
    assert plain.json()["flattenOnStop"] is False


async def test_stop_with_flatten_of_a_stopped_bot_is_the_usual_409(client, operator_headers, made):
    bot = await create(client, operator_headers, made)
    body = problem(await client.post(f"/bots/{bot['id']}/stop?flatten=true", headers=operator_headers), 409)
    assert body["currentState"] == "stopped"


# -- position in the reads ------------------------------------------------------------------------------
async def test_position_is_null_until_the_bot_ran_then_shows_ledger_and_open_orders(nats_client, operator_headers,
                                                                                     made, admin):
    bot = await create(nats_client, operator_headers, made, mode="live")
    assert bot["position"] is None
    assert (await nats_client.get(f"/bots/{bot['id']}")).json()["position"] is None

    entry = f"gb{bot['id']}-1709251200000-0"
    await seed_ledger(admin, bot["id"], mode="live", qty="0.12345678", cash="4814.815", avg="42000.5",
                      fees="1.23456789", realized="-12.50")
    await seed_order(admin, bot["id"], entry, mode="live", status="filled", side="buy", order_type="market",
                     price=None, filled="0.12345678", reason="entry", stop_loss="39900.1", take_profit="46200",
                     at=T0)
    await seed_order(admin, bot["id"], f"{entry}-tp0", mode="live", status="partially_filled",
                     order_type="limit", qty="0.12345678", price="46200", filled="0.00000001",
                     reason="take_profit", oco=f"{entry}-oco0", at=T0 + timedelta(seconds=2))
    await seed_order(admin, bot["id"], f"{entry}-sl0", mode="live", status="accepted", qty="0.12345678",
                     price="39900.1", reason="stop_loss", oco=f"{entry}-oco0", at=T0 + timedelta(seconds=1))
    await seed_order(admin, bot["id"], f"gb{bot['id']}-1-0", mode="live", status="rejected", at=T0)

    position = (await nats_client.get(f"/bots/{bot['id']}")).json()["position"]
    assert datetime.fromisoformat(position.pop("updatedAt")) == T0
    orders = position.pop("openOrders")
    assert position == {"mode": "live", "symbol": "BTCUSDT", "qty": "0.12345678", "avgEntryPrice": "42000.5",
                        "cash": "4814.815", "feesPaid": "1.23456789", "realizedPnl": "-12.50"}
    # open ones only (not filled, not rejected), oldest first
    assert [datetime.fromisoformat(o.pop("createdAt")) for o in orders] == [T0 + timedelta(seconds=1),
                                                                           T0 + timedelta(seconds=2)]
    leg = {"side": "sell", "qty": "0.12345678", "reduceOnly": True, "ocoGroup": f"{entry}-oco0", "stopLoss": None,
           "takeProfit": None}
    assert orders == [
        {**leg, "clientOrderId": f"{entry}-sl0", "orderType": "stop", "filledQty": "0", "price": "39900.1",
         "reason": "stop_loss", "status": "accepted"},
        {**leg, "clientOrderId": f"{entry}-tp0", "orderType": "limit", "filledQty": "0.00000001", "price": "46200",
         "reason": "take_profit", "status": "partially_filled"},
    ]

    # the list shows the same position
    listed, cursor = None, None
    while listed is None:
        page = (await nats_client.get("/bots", params={"mode": "live", "limit": 100,
                                                         **({"cursor": cursor} if cursor else {})})).json()
        listed = next((b for b in page["items"] if b["id"] == bot["id"]), None)
        cursor = page["nextCursor"]
        assert listed is not None or cursor is not None, "bot missing from GET /bots"
    assert listed["position"] == (await nats_client.get(f"/bots/{bot['id']}")).json()["position"]
