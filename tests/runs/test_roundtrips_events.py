"""GET /runs/{id}/roundtrips and GET /bots/{id}/events against real rows."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from tests.runs.helpers import T0, collect, make_bot, make_run, problem


async def roundtrip(admin, run_id, bot_id, side, exit_minute, net):
    return await admin.fetchval(
        "INSERT INTO trading.roundtrips (run_id, bot_id, symbol, side, entry_at, exit_at, entry_price, exit_price, qty,"
        " gross_pnl, fees, net_pnl, duration_s, exit_reason) VALUES ($1, $2, 'BTCUSDT', $3, $4, $5, 61000.5, 61500,"
        " 0.01, 4.995, 1.225, $6, 60, 'signal') RETURNING id",
        run_id, bot_id, side, T0, T0 + timedelta(minutes=exit_minute), Decimal(net))


async def test_roundtrips_in_recorded_order_with_exact_money(api, admin):
    bot = await make_bot(admin)
    run = await make_run(admin, bot_id=bot)
    other = await make_run(admin)
    ids = [await roundtrip(admin, run, bot, "long" if i % 3 else "short", i, f"{i}.10") for i in range(12)]
    await roundtrip(admin, other, None, "long", 1, "1")
    items = await collect(api, f"/runs/{run}/roundtrips", {"limit": 5})
    assert [i["id"] for i in items] == ids
    assert items[1] == {"id": ids[1], "runId": run, "botId": bot, "symbol": "BTCUSDT", "side": "long",
                        "entryAt": "2024-03-01T00:00:00Z", "exitAt": "2024-03-01T00:01:00Z", "entryPrice": "61000.5",
                        "exitPrice": "61500", "qty": "0.01", "grossPnl": "4.995", "fees": "1.225", "netPnl": "1.10",
                        "durationS": 60.0, "exitReason": "signal"}
    shorts = await collect(api, f"/runs/{run}/roundtrips", {"side": "short", "limit": 2})
    assert [i["id"] for i in shorts] == ids[0::3]
    window = {"from": (T0 + timedelta(minutes=2)).isoformat(), "to": (T0 + timedelta(minutes=4)).isoformat()}
    assert [i["id"] for i in await collect(api, f"/runs/{run}/roundtrips", window)] == ids[2:4]


async def test_roundtrips_paging_survives_inserts(api, admin):
    run = await make_run(admin)
    original = [await roundtrip(admin, run, None, "long", i, "1") for i in range(9)]
    seen, cursor, added = [], None, []
    while True:
        body = (await api.get(f"/runs/{run}/roundtrips", params={"limit": 4, **({"cursor": cursor} if cursor else {})})).json()
        seen += [i["id"] for i in body["items"]]
        added.append(await roundtrip(admin, run, None, "long", 99, "2"))
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen[:9] == original and len(seen) == len(set(seen)) and seen[9:] == added[: len(seen) - 9]


async def test_roundtrips_errors_and_empty(api, admin):
    run = await make_run(admin)
    assert (await api.get(f"/runs/{run}/roundtrips")).json() == {"items": [], "nextCursor": None}
    problem(await api.get("/runs/999999999/roundtrips"), 404)
    problem(await api.get(f"/runs/{run}/roundtrips", params={"side": "flat"}), 422)
    problem(await api.get(f"/runs/{run}/roundtrips", params={"cursor": "Zm9v"}), 400)
    problem(await api.get(f"/runs/{run}/roundtrips", params={"from": "2024-03-02T00:00:00Z",
                                                             "to": "2024-03-01T00:00:00Z"}), 422)


async def event(admin, bot_id, kind, level="info", data=None):
    return await admin.fetchval(
        "INSERT INTO trading.bot_events (bot_id, kind, level, message, data) VALUES ($1, $2, $3, 'm', $4::jsonb)"
        " RETURNING id", bot_id, kind, level, json.dumps(data or {}))


async def test_bot_events_recent_first_filtered_and_paged(api, admin):
    bot = await make_bot(admin)
    other = await make_bot(admin)
    data = {"started": {"spec_version": 1, "paused": False, "abandoned_runs": []},
            "crashed": {"exit_code": 1, "backoff_s": 0.5, "failures": 1}, "quarantined": {"failures": 5},
            "deploy_failed": {"deploy_id": 3, "reason": "lease lost"}}
    ids = [await event(admin, bot, kind, level, data[kind])
           for kind, level in [("started", "info"), ("crashed", "error"), ("quarantined", "warning"),
                               ("started", "info"), ("deploy_failed", "warning")]]
    await event(admin, other, "paused")
    items = await collect(api, f"/bots/{bot}/events", {"limit": 2})
    assert [i["id"] for i in items] == ids[::-1]
    assert items[-1]["data"] == {"specVersion": 1, "paused": False, "abandonedRuns": []}
    assert items[-1]["botId"] == bot and items[-1]["runId"] is None
    assert items[-2]["data"] == {"exitCode": 1, "backoffS": 0.5, "failures": 1}  # typed by its kind
    assert [i["id"] for i in await collect(api, f"/bots/{bot}/events", {"kind": "started", "limit": 1})] == [ids[3], ids[0]]
    assert [i["id"] for i in await collect(api, f"/bots/{bot}/events", {"level": "warning"})] == [ids[4], ids[2]]
    at = await admin.fetchval("SELECT at FROM trading.bot_events WHERE id = $1", ids[0])
    assert len(await collect(api, f"/bots/{bot}/events", {"from": at.isoformat()})) == 5
    assert await collect(api, f"/bots/{bot}/events", {"to": at.isoformat()}) == []


async def test_bot_events_errors_and_empty(api, admin):
    bot = await make_bot(admin)
    assert (await api.get(f"/bots/{bot}/events")).json() == {"items": [], "nextCursor": None}
    problem(await api.get("/bots/999999999/events"), 404)
    problem(await api.get(f"/bots/{bot}/events", params={"level": "fatal"}), 422)
    problem(await api.get(f"/bots/{bot}/events", params={"kind": ""}), 422)


async def test_an_event_no_model_fits_is_answered_as_unrecognized_with_its_data(api, admin):
    from tests.events.helpers import metric_value

    bot = await make_bot(admin)
    before = metric_value("gordon_errors_total", component="events", kind="bot_event_shape")
    unknown = await event(admin, bot, "something_new", data={"detail_level": 2})
    misfit = await event(admin, bot, "crashed", data={"backoff_s": "soon"})  # not a number: does not fit
    fits = await event(admin, bot, "crashed", data={"backoff_s": 1, "failures": 1, "extra_member": True})
    items = {i["id"]: i for i in await collect(api, f"/bots/{bot}/events", {"limit": 10})}
    assert items[unknown]["kind"] == "unrecognized"
    assert items[unknown]["data"] == {"originalKind": "something_new", "recorded": {"detailLevel": 2}}
    assert items[misfit]["data"] == {"originalKind": "crashed", "recorded": {"backoffS": "soon"}}
    assert items[fits]["kind"] == "crashed" and items[fits]["data"] == {"backoffS": 1.0, "failures": 1}  # extra dropped
    assert metric_value("gordon_errors_total", component="events", kind="bot_event_shape") >= before + 2
