"""asyncapi.yaml documents exactly what the code sends and accepts (frames validated against it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import re

import orjson
import pytest
import yaml

from gordon_manager.events.breaker import BreakerEvent
from gordon_manager.events.protocol import (
    CHANNELS, ERROR_CODES, RESYNC_REASONS, breaker_item, error_frame, events_frame, heartbeat_frame, outbox_item,
    resync_frame, snapshot_frame, subscribed_frame, unsubscribed_frame, welcome_frame,
)

DOC = yaml.safe_load((Path(__file__).resolve().parents[2] / "asyncapi.yaml").read_text(encoding="utf-8"))
SCHEMAS = DOC["components"]["schemas"]


def validate(value: Any, schema: dict, path: str = "$") -> list[str]:
    """The subset of JSON Schema the document uses; returns the violations."""
    if "$ref" in schema:
        return validate(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], path)
    errors: list[str] = []
    if "allOf" in schema:
        for sub in schema["allOf"]:
            errors += validate(value, sub, path)
    if "oneOf" in schema:
        matches = sum(not validate(value, sub, path) for sub in schema["oneOf"])
        if matches != 1:
            errors.append(f"{path}: matches {matches} of oneOf")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
                  "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                  "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                  "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                  "null": lambda v: v is None}
        if not any(checks[k](value) for k in kinds):
            return [*errors, f"{path}: {value!r} is not {kinds}"]
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing {name}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += validate(item, properties[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10**9):
            errors.append(f"{path}: {len(value)} items")
        for i, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, str) and len(value) > schema.get("maxLength", 10**9):
        errors.append(f"{path}: too long")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, int) and value < schema.get("minimum", -(10**18)):
        errors.append(f"{path}: below minimum")
    return errors


def message_schema(name: str) -> dict:
    return DOC["components"]["messages"][name]["payload"]


def frame_json(frame) -> dict:
    return orjson.loads(frame.payload)


ROW = {"op": "update", "table": "bot_status",
       "row": {"bot_id": 7, "observed_state": "running", "updated_at": "2026-05-17T12:00:00+02:00"}}
BREAKER = BreakerEvent(breaker="daily_loss", state="open", at=datetime(2026, 5, 17, tzinfo=UTC),
                       data={"loss_pct": 2})
SAMPLES = {
    "welcome": welcome_frame(version="3.8.0", heartbeat_s=15.0, breaker_source="notify", last_id=3),
    "subscribed": subscribed_frame(["bot_status"], since=3, replayed=2, ref="r"),
    "unsubscribed": unsubscribed_frame(["bot_status"], ref=None),
    "snapshot": snapshot_frame("breaker_state", [{"breaker": "b", "state": "open", "reason": None,
                                                  "tripped_at": datetime(2026, 5, 17, tzinfo=UTC), "data": {},
                                                  "updated_at": datetime(2026, 5, 17, tzinfo=UTC)}], ref=None),
    "event": events_frame("bot_status", [4], [outbox_item(4, "bot_status", ROW)]),
    "batch": events_frame("bot_status", [4, 5], [outbox_item(4, "bot_status", ROW),
                                                 outbox_item(5, "bot_status", ROW)]),
    "heartbeat": heartbeat_frame(last_id=None, ref="p"),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_server_frames_match_the_document(name):
    assert validate(frame_json(SAMPLES[name]), message_schema(name)) == []


def test_nats_breaker_frames_replays_resyncs_and_errors_match():
    nats = events_frame("breaker_state", [None], [breaker_item(42, BREAKER.wire())])
    assert validate(frame_json(nats), message_schema("event")) == []
    replay = events_frame(None, [1, 2], [outbox_item(1, "bot_events", ROW), outbox_item(2, "run_progress", ROW)],
                          replay=True)
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
    assert validate({"type": "subscribe", "channels": ["nope"]}, message_schema("subscribe"))
    assert validate({"type": "ping", "extra": 1}, message_schema("ping"))


def test_vocabularies_are_the_code_s():
    assert SCHEMAS["ChannelName"]["enum"] == list(CHANNELS)
    assert SCHEMAS["Error"]["properties"]["code"]["enum"] == list(ERROR_CODES)
    assert SCHEMAS["Resync"]["properties"]["reason"]["enum"] == list(RESYNC_REASONS)
    messages = {"subscribe", "unsubscribe", "ping", "welcome", "subscribed", "unsubscribed", "snapshot",
                "event", "batch", "resync", "error", "heartbeat"}
    assert set(DOC["channels"]["ws"]["messages"]) == messages
    assert set(DOC["components"]["messages"]) == messages | {"newOrder", "cancelOrder", "fill", "orderStatus", "hint"}
    assert DOC["channels"]["ws"]["address"] == "/ws"
