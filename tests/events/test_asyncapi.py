"""asyncapi.yaml documents exactly what the code sends and accepts.

* the committed file is what ``gordon-manager asyncapi`` renders (its payload schemas are generated
  from the models /ws serialises with, so they cannot drift), and what GET /asyncapi.yaml serves;
* every frame the code builds — and every table's row as /ws sends it — validates against the
  document with a real JSON Schema validator (formats included);
* tests/events/test_asyncapi_parser.py validates the document itself with the official parser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
import yaml

from gordon_manager.events.asyncapi import ENVELOPES, model_schemas, render
from gordon_manager.events.breaker import BreakerEvent
from gordon_manager.events.protocol import (
    CHANNELS,
    ERROR_CODES,
    RESYNC_REASONS,
    breaker_item,
    error_frame,
    events_frame,
    heartbeat_frame,
    outbox_item,
    resync_frame,
    snapshot_frame,
    subscribed_frame,
    unsubscribed_frame,
    welcome_frame,
)
from gordon_manager.events.wire import ROW_MODELS
from gordon_manager.version import __version__

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "asyncapi.yaml").read_text(encoding="utf-8")
DOC = yaml.safe_load(TEXT)
SCHEMAS = DOC["components"]["schemas"]


def validator(schema: dict[str, Any]) -> jsonschema_rs.Draft7Validator:
    """A draft-7 validator (AsyncAPI's schema dialect is a superset of it) resolving the document's $refs."""
    return jsonschema_rs.Draft7Validator({**schema, "components": DOC["components"]}, validate_formats=True)


def validate(value: Any, schema: dict[str, Any]) -> list[str]:
    """The violations of ``value`` against ``schema`` (a $ref or a schema of the document)."""
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message[:300]}" for e in validator(schema).iter_errors(value)]


def message_schema(name: str) -> dict:
    return DOC["components"]["messages"][name]["payload"]


def frame_json(frame) -> dict:
    return orjson.loads(frame.payload)


T = "2026-05-17T12:00:00.25+02:00"  # what to_jsonb writes in a session on +02:00

EXECUTION = {"initial_cash": "10000", "taker_fee_bps": "10", "maker_fee_bps": "10", "slippage_bps": "1",
             "position_fraction": "1", "qty_step": "0.00000001", "price_step": "0.01", "cash_step": "0.00000001"}

# One row per watched table, as the outbox trigger captures it (snake_case, times with an offset,
# numeric columns as text since migration 0020, jsonb as written).
ROWS: dict[str, dict[str, Any]] = {
    "risk_halt": {"scope": "global", "halted": True, "reason": "drawdown", "actor": "gordon-risk", "updated_at": T},
    "breaker_state": {"breaker": "daily_loss", "state": "open", "reason": "loss", "tripped_at": T,
                      "data": {"loss_pct": 2.5, "BTC_USDT": 1}, "updated_at": T},
    "portfolio_state": {"id": 3, "bot_id": 7, "symbol": "BTCUSDT", "qty": "0.00000001", "avg_entry_price": None,
                        "cash": "1000.10", "mark_price": "61000", "exposure": "0", "unrealized_pnl": "-1.5",
                        "updated_at": T},
    "source_freshness": {"source": "klines", "last_update_at": T, "last_data_at": None, "stale_after_seconds": 60,
                         "detail": {"lag_ms": 12}, "updated_at": T},
    "backfill_jobs": {"id": 1, "source": "binance", "symbol": "BTCUSDT", "interval": "1m", "range_start": T,
                      "range_end": None, "status": "running", "progress": 0.5505372000000001, "rows_written": 42,
                      "error": None, "created_at": T, "updated_at": T},
    "bot_configs": {"id": 7, "name": "b", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m",
                    "params": {"fast": 10}, "execution": EXECUTION, "mode": "paper",
                    "image": "gordon-bot:test", "desired_state": "running", "version": 2, "spec_version": 1,
                    "shadow_of": None, "labels": {"team_name": "x"}, "created_by": "op", "created_at": T,
                    "updated_at": T, "delete_requested_at": None, "deleted_at": None, "flatten_on_stop": False},
    "bot_status": {"bot_id": 7, "observed_state": "running", "runtime": "process", "workload_id": "pid:1",
                   "observed_version": 1, "restarts": 0, "failure_times": [T], "backoff_s": 0, "next_retry_at": None,
                   "running_since": T, "quarantined": False, "quarantine_reason": None, "quarantined_at": None,
                   "last_error": None, "last_error_at": None, "last_heartbeat_at": T, "metrics_port": None,
                   "updated_at": T},
    "bot_events": {"id": 9, "bot_id": 7, "run_id": None, "kind": "fill", "level": "info", "message": "m",
                   "data": {"ts": 1709251560480, "client_order_id": "gb7-1-0"}, "at": T},
    "bot_deploys": {"id": 1, "bot_id": 7, "candidate_bot_id": 8, "state": "comparing", "from_version": 2,
                    "to_version": None, "candidate": {"strategy": "sma_crossover", "params": {"fast": 8}},
                    "compare_window": 60, "match_threshold": 0.95, "lease_ttl_s": 30, "lease_owner": "m",
                    "lease_expires_at": T, "bars_compared": 3, "matches": 1, "divergences": 0, "reason": None,
                    "actor": "op", "started_at": T, "updated_at": T, "finished_at": None, "from_spec_version": 1,
                    "live_run_id": None, "candidate_run_id": None, "compared_through": None, "min_actions": 5,
                    "max_window": None, "idle_skipped": 2, "forced_by": None, "compare_from": None},
    "service_deploys": {"id": 2, "service": "gordon-risk", "old_image": None, "new_image": "r:2",
                        "old_container_id": None, "new_container_id": None,
                        "health_check": {"http_path": "/health", "port": 8080}, "state": "starting", "reason": None,
                        "actor": "op", "started_at": T, "updated_at": T, "finished_at": None,
                        "health_deadline_at": None, "cleaned_up_at": None},
    "runs": {"id": 5, "kind": "backtest", "bot_id": None, "status": "running", "strategy": "sma_crossover",
             "params": {"fast": 10}, "symbol": "BTCUSDT", "interval": "1m", "range_start": T, "range_end": T,
             "config": {"qty_step": "1E-8"}, "progress": 0.25, "stats": None, "error": None,
             "cancel_requested": False, "created_by": "op", "created_at": T, "started_at": T, "finished_at": None,
             "heartbeat_at": T, "updated_at": T, "runner": "manager"},
    "backtest_sweeps": {"id": 3, "status": "running", "strategy": "sma_crossover", "symbol": "BTCUSDT",
                        "interval": "1m", "range_start": T, "range_end": T, "config": {"qty_step": "1E-8"},
                        "method": "grid", "space": {"fast": [5, 10]}, "seed": None, "objective": "sharpe",
                        "min_trades": 0, "trials_total": 2, "trials_done": 1, "best_trial": 0, "best_value": 1.5,
                        "cancel_requested": False, "error": None, "runner": "manager", "claimed_by": "m:h:1:ab",
                        "created_by": "op", "created_at": T, "started_at": T, "finished_at": None,
                        "heartbeat_at": T, "updated_at": T},
}
BREAKER = BreakerEvent(breaker="daily_loss", state="open", at=datetime(2026, 5, 17, tzinfo=UTC),
                       data={"loss_pct": 2})


def item(table: str, event_id: int = 4, op: str = "update") -> bytes:
    return outbox_item(event_id, ROW_MODELS[table][0], {"op": op, "table": table, "row": ROWS[table]})


SAMPLES = {
    "welcome": welcome_frame(version="3.8.0", heartbeat_s=15.0, breaker_source="notify", last_id=3),
    "subscribed": subscribed_frame(["bot_status"], since=3, replayed=2, ref="r"),
    "unsubscribed": unsubscribed_frame(["bot_status"], ref=None),
    "snapshot": snapshot_frame("breaker_state", [{"breaker": "b", "state": "open", "reason": None,
                                                  "tripped_at": datetime(2026, 5, 17, tzinfo=UTC), "data": {},
                                                  "updated_at": datetime(2026, 5, 17, tzinfo=UTC)}], ref=None),
    "event": events_frame("bot_status", [4], [item("bot_status")]),
    "batch": events_frame("bot_status", [4, 5], [item("bot_status", 4), item("bot_status", 5)]),
    "heartbeat": heartbeat_frame(last_id=None, ref="p"),
}


def test_asyncapi_yaml_is_current():
    assert TEXT == render(), ("asyncapi.yaml is stale: regenerate it with `make asyncapi` "
                              "(or `.venv/bin/gordon-manager asyncapi > asyncapi.yaml`) and commit it")
    assert DOC["asyncapi"] == "3.0.0" and DOC["info"]["version"] == __version__


def test_every_row_schema_is_its_model_s():
    models = [model for _, model, _ in ROW_MODELS.values()]
    generated = model_schemas([*models, BreakerEvent])
    for name, schema in generated.items():
        assert SCHEMAS[name] == schema, name
    for table, (channel, model, _) in ROW_MODELS.items():
        envelope = SCHEMAS[ENVELOPES[table]]
        assert envelope["properties"]["channel"] == {"const": channel}
        assert envelope["properties"]["table"] == {"const": table}
        assert envelope["properties"]["data"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in SCHEMAS["OutboxEvent"]["oneOf"]} == set(ENVELOPES.values())
    assert {channel for channel, _, _ in ROW_MODELS.values()} == set(CHANNELS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_server_frames_match_the_document(name):
    assert validate(frame_json(SAMPLES[name]), message_schema(name)) == []


@pytest.mark.parametrize("table", sorted(ROW_MODELS))
def test_every_table_s_row_matches_its_typed_event(table):
    ops = SCHEMAS[ENVELOPES[table]]["properties"]["op"]["enum"]
    for op in ops:
        frame = frame_json(events_frame(ROW_MODELS[table][0], [4], [item(table, op=op)]))
        assert validate(frame, message_schema("event")) == []
        assert validate({k: v for k, v in frame.items() if k != "type"},
                        {"$ref": f"#/components/schemas/{ENVELOPES[table]}"}) == []
    # typed, not a bare object: a wrong type in data is refused
    data = frame_json(events_frame(None, [4], [item(table)]))["data"]
    bad = {**data, next(iter(data)): {"not": "this"}}
    assert validate(bad, {"$ref": f"#/components/schemas/{ROW_MODELS[table][1].__name__}"}) != []


def test_nats_breaker_frames_replays_resyncs_and_errors_match():
    nats = events_frame("breaker_state", [None], [breaker_item(42, BREAKER.wire())])
    assert validate(frame_json(nats), message_schema("event")) == []
    replay = events_frame(None, [1, 2], [item("bot_events", 1, op="insert"), item("runs", 2)], replay=True)
    assert validate(frame_json(replay), message_schema("batch")) == []
    for reason in RESYNC_REASONS:
        assert validate(frame_json(resync_frame(reason, ["bot_status"], detail="d")), message_schema("resync")) == []
    for code in ERROR_CODES:
        frame = error_frame(code, "d", ref="x", errors=[{"loc": "channels", "msg": "m"}])
        assert validate(frame_json(frame), message_schema("error")) == []


def test_client_messages_match_the_document():
    assert validate({"type": "subscribe", "channels": ["bot_status"], "since": 1, "ref": "a"},
                    message_schema("subscribe")) == []
    assert validate({"type": "unsubscribe", "channels": ["bot_status"]}, message_schema("unsubscribe")) == []
    assert validate({"type": "ping"}, message_schema("ping")) == []


def test_the_validator_is_not_vacuous():
    event = frame_json(SAMPLES["event"])
    del event["id"]
    assert validate(event, message_schema("event"))
    wrong = frame_json(SAMPLES["event"])
    wrong["data"]["updatedAt"] = "yesterday"  # formats are checked
    assert validate(wrong, message_schema("event"))
    portfolio = frame_json(events_frame(None, [4], [item("portfolio_state")]))
    portfolio["data"]["cash"] = 1000.1  # a decimal as a number
    assert validate(portfolio, message_schema("event"))
    portfolio["data"]["cash"] = "1E-8"  # a decimal with an exponent
    assert validate(portfolio, message_schema("event"))
    assert validate({"type": "subscribe", "channels": ["nope"]}, message_schema("subscribe"))
    assert validate({"type": "ping", "extra": 1}, message_schema("ping"))


def test_vocabularies_are_the_code_s():
    assert SCHEMAS["ChannelName"]["enum"] == list(CHANNELS)
    assert SCHEMAS["Error"]["properties"]["code"]["enum"] == list(ERROR_CODES)
    assert SCHEMAS["Resync"]["properties"]["reason"]["enum"] == list(RESYNC_REASONS)
    messages = {"subscribe", "unsubscribe", "ping", "welcome", "subscribed", "unsubscribed", "snapshot",
                "event", "batch", "resync", "error", "heartbeat"}
    assert set(DOC["channels"]["ws"]["messages"]) == messages
    assert set(DOC["components"]["messages"]) == messages | {"newOrder", "cancelOrder", "fill", "orderStatus", "hint",
                                                                     "barHint"}
    assert DOC["channels"]["ws"]["address"] == "/ws"


async def test_served_at_asyncapi_yaml(client):
    response = await client.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == TEXT


async def test_served_without_the_read_token_like_openapi_json(database, data_dir):
    import httpx

    from gordon_manager.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database, data_dir, read_token="read-token-0123456789abcdef"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            assert (await http.get("/asyncapi.yaml")).status_code == 200
            assert (await http.get("/openapi.json")).status_code == 200
            assert (await http.get("/bots")).status_code == 401  # a read still needs it
