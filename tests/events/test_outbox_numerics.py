"""Numeric columns reach the outbox as exact text (migration 0020), so /ws can render them as HTTP does."""

from __future__ import annotations

import json
import uuid

TRIGGERS = """
SELECT c.relname AS table_name, t.tgname,
       string_to_array(rtrim(encode(t.tgargs, 'escape'), '\\000'), '\\000') AS args,
       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.atttypid = 'numeric'::regtype), '{}') AS numerics
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
WHERE p.proname = 'emit_event' AND NOT t.tgisinternal
ORDER BY c.relname
"""


async def test_every_numeric_column_of_a_watched_table_is_listed_in_its_trigger(admin):
    rows = await admin.fetch(TRIGGERS)
    assert {r["table_name"] for r in rows} >= {"portfolio_state", "runs", "bot_configs", "breaker_state"}
    for row in rows:
        assert sorted(row["args"][1:]) == sorted(row["numerics"]), (
            f"{row['tgname']}: list the numeric columns {row['numerics']} after the channel name")
    assert [r["numerics"] for r in rows if r["table_name"] == "portfolio_state"] == [
        ["qty", "avg_entry_price", "cash", "mark_price", "exposure", "unrealized_pnl"]]


async def test_numerics_are_exact_text_in_the_outbox(admin):
    symbol = f"T{uuid.uuid4().hex[:6].upper()}"
    await admin.execute("INSERT INTO trading.portfolio_state (symbol, qty, avg_entry_price, cash, exposure) "
                        "VALUES ($1, 0.00000001, NULL, 1000.10, -12345678901234567890.123456789)", symbol)
    row = json.loads(await admin.fetchval("SELECT payload->'row' FROM trading.events WHERE channel = 'portfolio_state' "
                               "AND payload->'row'->>'symbol' = $1 ORDER BY id DESC LIMIT 1", symbol))
    assert row["qty"] == "0.00000001" and row["cash"] == "1000.10"
    assert row["exposure"] == "-12345678901234567890.123456789"  # beyond a double's digits
    assert row["avg_entry_price"] is None and row["mark_price"] is None and row["unrealized_pnl"] == "0"
    assert isinstance(row["id"], int)  # other columns untouched
    await admin.execute("DELETE FROM trading.portfolio_state WHERE symbol = $1", symbol)
    deleted = json.loads(await admin.fetchval("SELECT payload FROM trading.events WHERE channel = 'portfolio_state' "
                                   "AND payload->'row'->>'symbol' = $1 ORDER BY id DESC LIMIT 1", symbol))
    assert deleted["op"] == "delete" and deleted["row"]["cash"] == "1000.10"
