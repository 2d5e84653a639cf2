"""The intent relay on real PostgreSQL and JetStream: committed intents only, in order, deduplicated
against the bot's own publish, and a failure never reorders a bot's intents."""

from __future__ import annotations

import uuid

import nats
import orjson

from gordon_manager.botrunner import contract
from gordon_manager.events.intent_relay import IntentRelay
from gordon_manager.observability import metrics
from tests.events.helpers import until


async def intents_stream(url: str):
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    js = nc.jetstream()
    await js.add_stream(name=contract.INTENTS_STREAM, subjects=[contract.INTENTS_SUBJECTS],
                        duplicate_window=contract.DEDUP_WINDOW_S)
    return nc, js


async def insert_intent(conn, bot_id: int, coid: str, n: int) -> None:
    payload = {"type": "new", "clientOrderId": coid, "botId": bot_id, "n": n}
    await conn.execute("INSERT INTO trading.order_intents (bot_id, client_order_id, kind, subject, payload)"
                       " VALUES ($1, $2, 'new', $3, $4::text::jsonb)", bot_id, coid,
                       contract.intents_subject(bot_id), orjson.dumps(payload).decode())


def relayed(outcome: str) -> float:
    return metrics.INTENTS_RELAYED.labels(outcome=outcome)._value.get()


async def stored(js, bot_id: int) -> list[dict]:
    sub = await js.subscribe(contract.intents_subject(bot_id), ordered_consumer=True)
    out = []
    try:
        while True:
            try:
                message = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return out
            out.append({"msgId": message.headers.get("Nats-Msg-Id"), **orjson.loads(message.data)})
    finally:
        await sub.unsubscribe()


async def test_committed_intents_are_relayed_in_order_and_deduplicated(nats_server, start_manager, admin, bot_id):
    nc, js = await intents_stream(nats_server.url)
    try:
        async with start_manager(bus_nats_url=nats_server.url) as manager:
            relay = next(s for s in manager.ctx.supervisor.loops if isinstance(s, IntentRelay))
            await until(lambda: relay.listening and relay._js is not None, timeout=10)
            coids = [f"gb{bot_id}-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
            # a rolled-back transaction's intent is never announced
            tx = admin.transaction()
            await tx.start()
            await insert_intent(admin, bot_id, f"gb{bot_id}-rolled-back", 99)
            await tx.rollback()
            async with admin.transaction():  # one transaction, several intents (an exit and its cancels)
                for i, coid in enumerate(coids[:3]):
                    await insert_intent(admin, bot_id, coid, i)
            for i, coid in enumerate(coids[3:], start=3):
                await insert_intent(admin, bot_id, coid, i)
            await until(lambda: stored(js, bot_id), timeout=10)

            async def all_five():
                return len(await stored(js, bot_id)) == 5

            await until(all_five, timeout=10)
            messages = await stored(js, bot_id)
            assert [m["msgId"] for m in messages] == coids and [m["n"] for m in messages] == list(range(5))
            # the bot publishing the same intent afterwards is a duplicate, not a second order
            ack = await js.publish(contract.intents_subject(bot_id), b"{}", headers={"Nats-Msg-Id": coids[0]})
            assert ack.duplicate
            assert len(await stored(js, bot_id)) == 5
    finally:
        await nc.close()


async def test_a_relay_that_cannot_publish_drops_counts_and_holds_nothing(nats_server, start_manager, admin,
                                                                                bot_id):
    # no ORDER_INTENTS stream: JetStream refuses every publish
    async with start_manager(bus_nats_url=nats_server.url) as manager:
        relay = next(s for s in manager.ctx.supervisor.loops if isinstance(s, IntentRelay))
        await until(lambda: relay.listening and relay._js is not None, timeout=10)
        before = relayed("dropped")
        async with admin.transaction():
            for i in range(3):
                await insert_intent(admin, bot_id, f"gb{bot_id}-{uuid.uuid4().hex[:6]}-{i}", i)
        await until(lambda: relayed("dropped") >= before + 3, timeout=15)
        await until(lambda: not relay._senders, timeout=5)
        assert relay._queued == 0 and relay._pending == {}
