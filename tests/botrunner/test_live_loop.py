"""The live loop end to end: real bot processes started by the reconciler, real NATS JetStream, real
Postgres, and a test executor playing gordon-executor (tests/botrunner/executor.py)."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import orjson
import pytest
from asyncpg import connect as asyncpg_connect

from gordon_manager.botrunner import contract
from tests.botrunner.live_helpers import HEADERS, Bars, Db, bot_json, live_bot, no_drift, trading
from tests.conftest import create_database, wait_for
from tests.reconcile.conftest import kill_leftovers  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("kill_leftovers")


@pytest.fixture(scope="module")
async def ldb(pg_server_url):
    return await create_database(pg_server_url)


def pid_of(bot: dict) -> int:
    return int(bot["status"]["workloadId"].split(":")[1])


async def test_kill_9_live_bot_keeps_position_and_brackets_and_sells_exactly_it(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url) as (db, bars, executor, client, bot_id, first_run):
        # a breakout: the bot buys at the close, the executor fills it, the bracket goes out as OCO legs
        await bars.add(102.0)
        await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
        held = await db.qty(bot_id)
        assert held > 0
        legs = sorted(w["clientOrderId"] for w in executor.working_of(bot_id))
        assert [leg.rsplit("-", 1)[1] for leg in legs] == ["sl0", "tp0"]
        assert await wait_for(lambda: _open_orders_are(db, bot_id, legs), timeout=10)
        # the resting legs' 'accepted' reports are written with a later transaction (at the latest the
        # heartbeat's) and only then acknowledged: nothing is left unacknowledged at JetStream
        assert await wait_for(lambda: _accepted_and_acked(db, executor, bot_id, legs), timeout=15)

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
        await no_drift(ldb)
        trips = await db.fetch("SELECT qty FROM trading.roundtrips WHERE bot_id = $1", bot_id)
        assert [t["qty"] for t in trips] == [held]
        stop = await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)
        assert stop.status_code == 200


async def _open_orders_are(db: Db, bot_id: int, expected: list[str]) -> bool:
    return await db.open_orders(bot_id) == expected


async def _accepted_and_acked(db: Db, executor, bot_id: int, legs: list[str]) -> bool:
    rows = await db.fetch("SELECT status FROM trading.bot_orders WHERE bot_id = $1 AND client_order_id = ANY($2)",
                          bot_id, legs)
    if [r["status"] for r in rows] != ["accepted"] * len(legs):
        return False
    info = await executor._js.consumer_info(contract.REPORTS_STREAM, contract.consumer_name(bot_id))
    return info.num_ack_pending == 0 and info.num_pending == 0


async def _flat(db: Db, bot_id: int) -> bool:
    return await db.qty(bot_id) == 0 and not await db.open_orders(bot_id)


async def _long_with_bracket(bars: Bars, executor, db: Db, bot_id: int) -> Decimal:
    """Drive the bot into a filled entry whose two bracket legs work at the executor."""
    await bars.add(102.0)
    await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
    await wait_for(lambda: _open_orders_count(db, bot_id, 2), timeout=10)
    return await db.qty(bot_id)


async def _open_orders_count(db: Db, bot_id: int, n: int) -> bool:
    return len(await db.open_orders(bot_id)) == n


async def test_nats_restart_mid_stream_loses_and_doubles_nothing(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url) as (db, bars, executor, client, bot_id, _run):
        held = await _long_with_bracket(bars, executor, db, bot_id)
        nats_server.stop()
        # the exit is decided and committed while NATS is down: it waits in the outbox
        await bars.add(102.0, 102.0, 98.0)
        await wait_for(lambda: _unpublished(db, bot_id), timeout=20)
        nats_server.start()
        await wait_for(lambda: _flat(db, bot_id), timeout=30)
        await wait_for(lambda: _all_published(db, bot_id), timeout=10)
        # and trading goes on after the outage: a new entry
        await bars.add(97.0, 97.0, 99.0)
        await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
        decisions = await db.decisions(bot_id)
        assert len(decisions) == 3
        decided = {d["client_order_id"] for d in decisions}
        orders = executor.new_orders(bot_id)
        assert decided <= {o["clientOrderId"] for o in orders}
        assert all(executor.deliveries(o["clientOrderId"]) == 1 for o in orders), "an intent was delivered twice"
        exit_ = next(o for o in orders if o["reason"] == "exit")
        assert Decimal(exit_["qty"]) == held
        intents = await db.val("SELECT count(*) FROM trading.order_intents WHERE bot_id = $1 AND kind = 'new'", bot_id)
        assert intents == len(orders)
        await no_drift(ldb)


async def _unpublished(db: Db, bot_id: int) -> bool:
    return await db.val("SELECT count(*) FROM trading.order_intents WHERE bot_id = $1 AND published_at IS NULL",
                        bot_id) > 0


async def _all_published(db: Db, bot_id: int) -> bool:
    return await db.val("SELECT count(*) FROM trading.order_intents WHERE bot_id = $1 AND published_at IS NULL",
                        bot_id) == 0


async def test_a_rejected_entry_leaves_the_ledger_unchanged(ldb, data_dir, nats_server):
    rejected = []

    def reject_first_buy(intent):
        if intent["side"] == "buy" and not rejected:
            rejected.append(intent["clientOrderId"])
            return "insufficient balance"
        return None

    async with live_bot(ldb, data_dir, nats_server.url,
                        executor={"reject": reject_first_buy}) as (db, bars, executor, client, bot_id, _run):
        await bars.add(102.0)
        events = await wait_for(lambda: db.events(bot_id, "order_rejected"), timeout=20)
        assert "insufficient balance" in events[0]["message"]
        ledger = await db.ledger(bot_id)
        assert ledger["qty"] == 0 and ledger["cash"] == Decimal("10000") and ledger["fees_paid"] == 0
        assert await db.open_orders(bot_id) == []
        status = await db.val("SELECT status FROM trading.bot_orders WHERE client_order_id = $1", rejected[0])
        assert status == "rejected"
        # the next entry signal is traded normally
        await bars.add(100.0, 100.0, 104.0)
        await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
        assert await db.qty(bot_id) > 0
        await no_drift(ldb)


async def test_halt_and_breaker_block_entries_but_not_exits(ldb, data_dir, nats_server):
    import nats

    async with live_bot(ldb, data_dir, nats_server.url) as (db, bars, executor, client, bot_id, _run):
        held = await _long_with_bracket(bars, executor, db, bot_id)
        admin = await asyncpg_connect(ldb.admin_url)
        try:
            await admin.execute("INSERT INTO trading.risk_halt (scope, halted, reason) VALUES ($1, true, 'test')",
                                f"bot:{bot_id}")
            # the exit still goes, and sells what is held
            await bars.add(102.0, 102.0, 98.0)
            await wait_for(lambda: _flat(db, bot_id), timeout=20)
            exits = [o for o in executor.new_orders(bot_id) if o["reason"] == "exit"]
            assert len(exits) == 1 and Decimal(exits[0]["qty"]) == held
            # an entry signal while halted is an event, not an order
            await bars.add(97.0, 97.0, 100.0)
            blocked = await wait_for(lambda: db.events(bot_id, "entry_blocked"), timeout=20)
            assert blocked[0]["data"]["reason"] == f"risk_halt:bot:{bot_id}"
            buys = [o for o in executor.new_orders(bot_id) if o["side"] == "buy"]
            assert len(buys) == 1
            # lift the halt; a breaker tripped over NATS for the bot's symbol blocks the next entry
            await admin.execute("UPDATE trading.risk_halt SET halted = false, updated_at = now() WHERE scope = $1",
                                f"bot:{bot_id}")
            nc = await nats.connect(nats_server.url)
            try:
                event = {"breaker": f"loss-{bot_id}", "state": "open", "scope": f"symbol:{bars.symbol}",
                         "reason": "daily loss", "at": "2030-01-01T00:00:00Z"}
                await nc.publish("risk.events.breaker", orjson.dumps(event))
                await nc.flush()
            finally:
                await nc.close()
            await bars.add(96.0, 96.0, 96.0, 99.0)
            await wait_for(lambda: _blocked_count(db, bot_id, 2), timeout=20)
            latest = (await db.events(bot_id, "entry_blocked"))[-1]
            assert latest["data"]["reason"] == f"breaker:loss-{bot_id}"
            assert len([o for o in executor.new_orders(bot_id) if o["side"] == "buy"]) == 1
            await no_drift(ldb)
        finally:
            await admin.execute("DELETE FROM trading.risk_halt WHERE scope = $1", f"bot:{bot_id}")
            await admin.close()


async def _blocked_count(db: Db, bot_id: int, n: int) -> bool:
    return len(await db.events(bot_id, "entry_blocked")) >= n


async def test_stop_cancels_orders_keeps_the_position_and_start_rearms_the_bracket(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url) as (db, bars, executor, client, bot_id, first):
        held = await _long_with_bracket(bars, executor, db, bot_id)
        legs = sorted(w["clientOrderId"] for w in executor.working_of(bot_id))
        assert (await client.post(f"/bots/{bot_id}/stop", headers=HEADERS)).status_code == 200
        await wait_for(lambda: _run_status(db, first["id"], "stopped"), timeout=20)
        await wait_for(lambda: not executor.working_of(bot_id), timeout=10)
        assert executor.statuses["cancelled"] >= 2
        assert await db.qty(bot_id) == held
        assert await db.open_orders(bot_id) == []  # the executor's cancels were booked on the way out
        # start again: the position is recovered and its bracket re-armed (next generation)
        assert (await client.post(f"/bots/{bot_id}/start", headers=HEADERS)).status_code == 200
        await trading(db, bot_id, other_than=first["id"])
        await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=20)
        rearmed = sorted(w["clientOrderId"] for w in executor.working_of(bot_id))
        assert rearmed == [leg[:-1] + "1" for leg in legs]
        assert all(Decimal(w["qty"]) == held for w in executor.working_of(bot_id))
        assert await db.events(bot_id, "bracket_rearmed")
        await no_drift(ldb)


async def test_stop_with_flatten_sells_the_position_first(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url,
                        executor={"latency_s": 0.3, "parts": 2}) as (db, bars, executor, client, bot_id, run):
        held = await _long_with_bracket(bars, executor, db, bot_id)
        refused = await client.delete(f"/bots/{bot_id}", headers=HEADERS)
        assert refused.status_code == 409 and str(held) in refused.json()["detail"]
        response = await client.post(f"/bots/{bot_id}/stop?flatten=true", headers=HEADERS)
        assert response.status_code == 200 and response.json()["flattenOnStop"] is True
        await wait_for(lambda: _run_status(db, run["id"], "stopped"), timeout=30)
        assert await db.qty(bot_id) == 0 and await db.open_orders(bot_id) == []
        flattens = [o for o in executor.new_orders(bot_id) if o["reason"] == "flatten"]
        assert len(flattens) == 1 and Decimal(flattens[0]["qty"]) == held and flattens[0]["reduceOnly"]
        assert flattens[0]["clientOrderId"].endswith("-flat")
        assert (await db.events(bot_id, "flattened"))
        trips = await db.fetch("SELECT qty, exit_reason FROM trading.roundtrips WHERE bot_id = $1", bot_id)
        assert [(t["qty"], t["exit_reason"]) for t in trips] == [(held, "flatten")]
        bot = await bot_json(client, bot_id)
        assert Decimal(bot["position"]["qty"]) == 0 and bot["position"]["openOrders"] == []
        await no_drift(ldb)
        # flat now: the delete goes through
        assert (await client.delete(f"/bots/{bot_id}", headers=HEADERS)).status_code == 202


async def _run_status(db: Db, run_id: int, status: str) -> bool:
    return await db.val("SELECT status FROM trading.runs WHERE id = $1", run_id) == status


async def test_partial_and_duplicate_fills_book_once(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url,
                        executor={"parts": 3, "duplicate_fills": True}) as (db, bars, executor, client, bot_id, _run):
        held = await _long_with_bracket(bars, executor, db, bot_id)
        buy = next(o for o in executor.new_orders(bot_id) if o["side"] == "buy")
        assert held == Decimal(buy["qty"]) == executor.positions[bot_id]
        fills = await db.fetch("SELECT qty, price, notional, fee FROM trading.bot_fills WHERE client_order_id = $1",
                               buy["clientOrderId"])
        assert len(fills) == 3 and sum(f["qty"] for f in fills) == held
        assert all(Decimal(w["qty"]) == held for w in executor.working_of(bot_id)), "one bracket, for the whole entry"
        assert await db.val("SELECT count(*) FROM trading.bot_orders WHERE bot_id = $1", bot_id) == 3  # entry + legs
        # each fill booked once: cash is the start minus every fill's notional and fee, exactly
        for f in fills:
            assert f["fee"] == (f["qty"] * f["price"] * Decimal("0.001")).quantize(Decimal("0.00000001"))
        ledger = await db.ledger(bot_id)
        assert ledger["cash"] == Decimal("10000") - sum(f["notional"] + f["fee"] for f in fills)
        assert ledger["fees_paid"] == sum(f["fee"] for f in fills)
        reports = await db.val("SELECT count(*) FROM trading.bot_events WHERE bot_id = $1 AND kind = 'fill'", bot_id)
        assert reports == 3
        await no_drift(ldb)


async def test_paper_bot_killed_mid_position_keeps_it(ldb, data_dir, nats_server):
    async with live_bot(ldb, data_dir, nats_server.url,
                        mode="paper") as (db, bars, executor, client, bot_id, first):
        await bars.add(102.0, 102.0)  # decided at the breakout's close, filled at the next bar's open
        held = await wait_for(lambda: _positive(db, bot_id), timeout=20)
        legs = await db.open_orders(bot_id)
        assert len(legs) == 2
        os.kill(pid_of(await bot_json(client, bot_id)), signal.SIGKILL)
        second = await trading(db, bot_id, other_than=first["id"])
        assert Decimal(second["config"]["opening"]["qty"]) == held
        assert await db.open_orders(bot_id) == legs
        bot = await bot_json(client, bot_id)
        assert Decimal(bot["position"]["qty"]) == held and bot["position"]["mode"] == "paper"
        # its exit later sells exactly that
        await bars.add(102.0, 98.0, 98.0)
        await wait_for(lambda: _flat(db, bot_id), timeout=20)
        trips = await db.fetch("SELECT qty FROM trading.roundtrips WHERE bot_id = $1", bot_id)
        assert [t["qty"] for t in trips] == [held]


async def _positive(db: Db, bot_id: int):
    qty = await db.qty(bot_id)
    return qty if qty else None


async def test_bots_with_nats_wake_on_the_managers_hints_not_on_a_poll(ldb, data_dir, nats_server):
    """A minute-long poll: only the hints the manager relays (new bars, risk changes) can make it this fast."""
    async with live_bot(ldb, data_dir, nats_server.url, poll_s=60) as (db, bars, executor, client, bot_id, _run):
        admin = await asyncpg_connect(ldb.admin_url)
        try:
            # the halt's hint is relayed before the bar's (one relay, one NATS connection): blocked
            await admin.execute("INSERT INTO trading.risk_halt (scope, halted, reason) VALUES ($1, true, 'test')",
                                f"bot:{bot_id}")
            await bars.add(102.0)
            blocked = await wait_for(lambda: db.events(bot_id, "entry_blocked"), timeout=10)
            assert blocked[0]["data"]["reason"] == f"risk_halt:bot:{bot_id}"
            await admin.execute("UPDATE trading.risk_halt SET halted = false, updated_at = now() WHERE scope = $1",
                                f"bot:{bot_id}")
            await bars.add(100.0, 100.0, 104.0)
            await wait_for(lambda: len(executor.working_of(bot_id)) == 2, timeout=10)
        finally:
            await admin.close()
