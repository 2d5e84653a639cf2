"""Protocol units: client message validation, frame encoding, timestamp normalisation, resync rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from gordon_manager.events.breaker import BreakerEvent
from gordon_manager.events.protocol import (
    CHANNELS,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    events_frame,
    outbox_item,
    parse_client_message,
    snapshot_frame,
    ws_header,
)
from gordon_manager.events.session import MAX_REPLAY_ROWS, _resync_reason
from gordon_manager.http.values import utc_times


def test_client_messages_parse():
    sub = parse_client_message('{"type":"subscribe","channels":["bot_status","bot_events"],"since":5,"ref":"a"}')
    assert sub == Subscribe(type="subscribe", channels=["bot_status", "bot_events"], since=5, ref="a")
    assert isinstance(parse_client_message(b'{"type":"unsubscribe","channels":["bot_status"]}'), Unsubscribe)
    assert isinstance(parse_client_message('{"type":"ping"}'), Ping)


@pytest.mark.parametrize(("raw", "code"), [
    ("not json", "bad_json"),
    ("[1,2]", "bad_message"),
    ('{"type":"subscribe"}', "bad_message"),
    ('{"type":"subscribe","channels":[]}', "bad_message"),
    ('{"type":"subscribe","channels":["bot_status"],"since":-1}', "bad_message"),
    ('{"type":"subscribe","channels":["bot_status"],"extra":1}', "bad_message"),
    ('{"type":"dance"}', "bad_message"),
    ('{"type":"subscribe","channels":["nope","bot_status"]}', "unknown_channel"),
    ("x" * 20000, "too_large"),
])
def test_bad_client_messages(raw, code):
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(raw)
    assert caught.value.code == code


def test_ref_is_echoed_in_validation_errors():
    with pytest.raises(ProtocolError) as caught:
        parse_client_message('{"type":"subscribe","ref":"r1"}')
    assert caught.value.ref == "r1" and caught.value.errors[0]["loc"] == "channels"


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 70000])
def test_ws_header_lengths(length):
    header = ws_header(length)
    assert header[0] == 0x81
    if length < 126:
        assert header[1] == length
    elif length < 65536:
        assert header[1] == 126 and int.from_bytes(header[2:4], "big") == length
    else:
        assert header[1] == 127 and int.from_bytes(header[2:10], "big") == length


def test_frames_share_one_encoding_per_event():
    a = outbox_item(1, "bot_status", {"op": "update", "table": "bot_status", "row": {"bot_id": 7}})
    b = outbox_item(2, "bot_status", {"op": "update", "table": "bot_status", "row": {"bot_id": 8}})
    single = events_frame("bot_status", [1], [a])
    # (a row its model refuses — no observed_state — still goes out, its columns camelCase)
    assert orjson.loads(single.payload) == {"type": "event", "id": 1, "channel": "bot_status", "op": "update",
                                            "table": "bot_status", "data": {"botId": 7}}
    batch = events_frame("bot_status", [1, 2], [a, b])
    assert orjson.loads(batch.payload)["events"][1]["data"] == {"botId": 8}
    assert batch.wire == ws_header(len(batch.payload)) + batch.payload
    assert batch.wire is batch.wire and batch.text == batch.payload.decode()
    replay = events_frame(None, [1], [a], replay=True)
    assert orjson.loads(replay.payload)["replay"] is True
    assert batch.without(set()) is batch
    assert batch.without({1, 2}) is None
    assert orjson.loads(batch.without({1}).payload)["id"] == 2


def test_timestamps_become_utc_z_and_nothing_else_changes():
    value = {"at": "2026-05-17T12:00:00.5+02:00", "name": "2026-05-17", "n": 1,
             "list": ["2026-05-17T10:00:00+00:00"], "dt": datetime(2026, 5, 17, 10, tzinfo=UTC)}
    assert utc_times(value) == {"at": "2026-05-17T10:00:00.500000Z", "name": "2026-05-17", "n": 1,
                                      "list": ["2026-05-17T10:00:00Z"], "dt": "2026-05-17T10:00:00Z"}
    snap = orjson.loads(snapshot_frame("breaker_state", [{
        "breaker": "b", "state": "open", "reason": None, "tripped_at": value["dt"], "data": {"x_y": 1},
        "updated_at": datetime(2026, 5, 17, 12, tzinfo=timezone(timedelta(hours=2)))}], ref=None).payload)
    assert snap["items"] == [{"breaker": "b", "state": "open", "reason": None, "trippedAt": "2026-05-17T10:00:00Z",
                              "data": {"x_y": 1}, "updatedAt": "2026-05-17T10:00:00Z"}]  # data: gordon-risk's keys


def test_breaker_event_accepts_snake_or_camel_and_emits_camel_with_its_data_as_sent():
    snake = BreakerEvent.model_validate_json(
        b'{"breaker":"daily_loss","state":"half_open","at":"2026-05-17T12:00:00+02:00","previous_state":"open",'
        b'"data":{"loss_pct":2.5},"unknown":1}')
    camel = BreakerEvent.model_validate({"breaker": "daily_loss", "state": "half_open",
                                         "at": "2026-05-17T10:00:00Z", "previousState": "open",
                                         "data": {"loss_pct": 2.5}})
    assert snake == camel
    assert snake.wire() == {"breaker": "daily_loss", "state": "half_open", "reason": None,
                            "at": "2026-05-17T10:00:00Z", "previousState": "open", "scope": None,
                            "data": {"loss_pct": 2.5}}
    with pytest.raises(ValueError):
        BreakerEvent.model_validate_json(b'{"breaker":"x","state":"melted","at":"2026-05-17T10:00:00Z"}')
    with pytest.raises(ValueError):  # a naive time is ambiguous
        BreakerEvent.model_validate_json(b'{"breaker":"x","state":"open","at":"2026-05-17T10:00:00"}')


@pytest.mark.parametrize(("since", "oldest", "newest", "rows", "reason"), [
    (0, None, None, 0, None),            # nothing ever happened
    (5, None, None, 0, "unknown_position"),
    (11, 1, 10, 0, "unknown_position"),  # ahead of the outbox (another database?)
    (10, 1, 10, 0, None),                # up to date
    (10, None, 10, 0, None),             # up to date, everything since pruned
    (3, None, 10, 0, "pruned"),
    (3, 6, 10, 5, "pruned"),
    (5, 6, 10, 5, None),                 # 6 onwards retained: nothing missing
    (4, 6, 10, 5, "pruned"),             # 5 is gone (pruned, or a rollback: resync to be safe)
    (4, 5, 10, MAX_REPLAY_ROWS + 1, "too_far_behind"),
])
def test_resync_rules(since, oldest, newest, rows, reason):
    assert _resync_reason(since, oldest, newest, rows) == reason


def test_channel_list_is_the_seed_plus_manager_channels():
    assert CHANNELS[:5] == ("risk_halt_changed", "breaker_state", "portfolio_state", "source_freshness",
                            "backfill_jobs")
    assert set(CHANNELS[5:]) == {"bot_config_changed", "bot_status", "bot_events", "deploy_progress",
                                 "run_progress"}
