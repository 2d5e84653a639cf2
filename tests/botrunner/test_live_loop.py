"""The live loop end to end: real bot processes started by the reconciler, real NATS JetStream, real
Postgres, and a test executor playing gordon-executor (tests/botrunner/executor.py)."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest

from gordon_manager.db.connect import create_pool
from tests.botrunner.live_helpers import (
    HEADERS,
    Bars,
    Db,
    bot_json,
    create_live_bot,
    executor_running,
    live_settings,
    no_drift,
    trading,
)
from tests.conftest import create_database, wait_for
from tests.events.helpers import NatsServer
from tests.reconcile.conftest import kill_leftovers, running_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("kill_leftovers")


@pytest.fixture(scope="module")
async def ldb(pg_server_url):
    return await create_database(pg_server_url)


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


def pid_of(bot: dict) -> int:
    return int(bot["status"]["workloadId"].split(":")[1])


async def test_kill_9_live_bot_keeps_position_and_brackets_and_sells_exactly_it(ldb, data_dir, nats_server):
    db = Db(ldb.admin_url)
    bars = Bars(ldb.admin_url)
    await bars.flat(6, 100.0)
    async with executor_running(url=nats_server.url, admin_url=ldb.admin_url) as executor, \
            running_app(live_settings(ldb, data_dir, nats_server.url)) as (_app, client):
        bot_id = await create_live_bot(client, bars.symbol)
        first_run = await trading(db, bot_id)
        # a breakout: the bot buys at the close, the executor fills it, the bracket goes out as OCO legs
        await bars.add(102.0)
        await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
        held = await db.qty(bot_id)
        assert held > 0
        legs = sorted(w["clientOrderId"] for w in executor.working_of(bot_id))
        assert [leg.rsplit("-", 1)[1] for leg in legs] == ["sl0", "tp0"]
        assert await wait_for(lambda: _open_orders_are(db, bot_id, legs), timeout=10)

        bot = await bot_json(client, bot_id)
        os.kill(pid_of(bot), signal.SIGKILL)
        second_run = await trading(db, bot_id, other_than=first_run["id"])
        opening = second_run["config"]["opening"]
        assert Decimal(opening["qty"]) == held
        assert sorted(o["client_order_id"] for o in opening["orders"]) == legs
        killed = (await db.fetch("SELECT status FROM trading.runs WHERE id = $1", first_run["id"]))[0]
        assert killed["status"] == "abandoned"
        bot = await bot_json(client, bot_id)
        assert Decimal(bot["position"]["qty"]) == held
        assert sorted(o["clientOrderId"] for o in bot["position"]["openOrders"]) == legs

        # the next exit sells exactly the recovered quantity, after cancelling the bracket
        await bars.add(102.0, 102.0, 98.0)
        await wait_for(lambda: _flat(db, bot_id), timeout=20)
        sells = [o for o in executor.new_orders(bot_id) if o["side"] == "sell" and o["reason"] == "exit"]
        assert len(sells) == 1 and Decimal(sells[0]["qty"]) == held
        await wait_for(lambda: not executor.working_of(bot_id), timeout=10)

        # one order per decision, never twice: distinct ids at the executor = decisions + bracket legs
        decisions = await db.decisions(bot_id)
        decided = {d["client_order_id"] for d in decisions}
        assert len(decided) == len(decisions) == 2
        seen = {o["clientOrderId"] for o in executor.new_orders(bot_id)}
        assert seen == decided | set(legs)
        assert all(executor.deliveries(coid) == 1 for coid in seen)
        pool = await create_pool(ldb.manager_url, min_size=1, max_size=2)
        try:
            await no_drift(pool)
        finally:
            await pool.close()
        trips = await db.fetch("SELECT qty FROM trading.roundtrips WHERE bot_id = $1", bot_id)
        assert [t["qty"] for t in trips] == [held]
        stop = await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        assert stop.status_code == 200


async def _open_orders_are(db: Db, bot_id: int, expected: list[str]) -> bool:
    return await db.open_orders(bot_id) == expected


async def _flat(db: Db, bot_id: int) -> bool:
    return await db.qty(bot_id) == 0 and not await db.open_orders(bot_id)
