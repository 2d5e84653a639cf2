"""GET /overlays/decisions and /overlays/summary against real rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.runs.helpers import collect, make_bot, problem

T = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def clean(admin):
    await admin.execute("TRUNCATE trading.overlay_decisions")


async def decide(admin, bot_id, overlay, decision, at, data=None):
    return await admin.fetchval(
        "INSERT INTO trading.overlay_decisions (bot_id, overlay, decision, reason, data, at)"
        " VALUES ($1, $2, $3, 'because', $4::jsonb, $5) RETURNING id", bot_id, overlay, decision,
        json.dumps(data or {}), at)


async def test_decisions_newest_first_filtered_and_paged(api, admin):
    a, b = await make_bot(admin), await make_bot(admin)
    ids = [await decide(admin, a, "vol_gate", "block", T, {"atr_ratio": 3.4}),
           await decide(admin, b, "vol_gate", "allow", T + timedelta(minutes=1)),
           await decide(admin, a, "dd_guard", "scale", T + timedelta(minutes=2)),
           await decide(admin, a, "vol_gate", "allow", T + timedelta(minutes=3))]
    items = await collect(api, "/overlays/decisions", {"limit": 3})
    assert [i["id"] for i in items] == ids[::-1]
    first = items[-1]
    assert first == {"id": ids[0], "botId": a, "overlay": "vol_gate", "decision": "block", "reason": "because",
                     "data": {"atr_ratio": 3.4}, "at": "2024-03-01T00:00:00Z"}
    assert [i["id"] for i in await collect(api, "/overlays/decisions", {"bot": a, "limit": 1})] == [ids[3], ids[2], ids[0]]
    assert [i["id"] for i in await collect(api, "/overlays/decisions", {"overlay": "vol_gate"})] == [ids[3], ids[1], ids[0]]
    assert [i["id"] for i in await collect(api, "/overlays/decisions", {"decision": "allow"})] == [ids[3], ids[1]]
    window = {"from": (T + timedelta(minutes=1)).isoformat(), "to": (T + timedelta(minutes=3)).isoformat()}
    assert [i["id"] for i in await collect(api, "/overlays/decisions", window)] == [ids[2], ids[1]]


async def test_decisions_empty_and_bad_parameters(api):
    assert (await api.get("/overlays/decisions")).json() == {"items": [], "nextCursor": None}
    problem(await api.get("/overlays/decisions", params={"decision": "maybe"}), 422)
    problem(await api.get("/overlays/decisions", params={"limit": 5000}), 422)
    problem(await api.get("/overlays/decisions", params={"cursor": "abc"}), 400)
    problem(await api.get("/overlays/decisions", params={"from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z"}),
            422)


async def test_summary_counts_shares_and_rates(api, admin):
    a, b = await make_bot(admin), await make_bot(admin)
    for i in range(3):
        await decide(admin, a, "vol_gate", "block", T + timedelta(minutes=i))
    await decide(admin, b, "vol_gate", "allow", T + timedelta(minutes=5))
    await decide(admin, a, "dd_guard", "flatten", T + timedelta(minutes=6))
    await decide(admin, a, "dd_guard", "flatten", T + timedelta(hours=5))  # outside the window
    window = {"from": T.isoformat(), "to": (T + timedelta(hours=2)).isoformat()}
    body = (await api.get("/overlays/summary", params=window)).json()
    assert body["from"] == "2024-03-01T00:00:00Z" and body["to"] == "2024-03-01T02:00:00Z" and body["total"] == 5
    assert body["overlays"] == [
        {"overlay": "dd_guard", "total": 1, "decisions": [{"decision": "flatten", "count": 1, "share": 1.0, "perHour": 0.5}]},
        {"overlay": "vol_gate", "total": 4, "decisions": [
            {"decision": "allow", "count": 1, "share": 0.25, "perHour": 0.5},
            {"decision": "block", "count": 3, "share": 0.75, "perHour": 1.5}]},
    ]
    only_b = (await api.get("/overlays/summary", params={**window, "bot": b})).json()
    assert only_b["total"] == 1 and only_b["overlays"][0]["decisions"][0]["decision"] == "allow"


async def test_summary_default_window_is_the_last_day(api, admin):
    bot = await make_bot(admin)
    now = datetime.now(UTC)
    await decide(admin, bot, "vol_gate", "block", now - timedelta(hours=1))
    await decide(admin, bot, "vol_gate", "block", now - timedelta(hours=30))
    body = (await api.get("/overlays/summary")).json()
    assert body["total"] == 1
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert end - start == timedelta(hours=24)


async def test_summary_empty_and_bad_window(api):
    body = (await api.get("/overlays/summary", params={"from": T.isoformat(), "to": (T + timedelta(hours=1)).isoformat()})).json()
    assert body["total"] == 0 and body["overlays"] == []
    problem(await api.get("/overlays/summary", params={"from": "2024-03-02T00:00:00Z", "to": "2024-03-01T00:00:00Z"}), 422)
