"""The executor contract's messages, the replay.* labels, and the risk gate against the real database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pydantic
import pytest

from gordon_manager.botrunner import contract
from gordon_manager.botrunner.labels import label_errors, replay_settings
from gordon_manager.botrunner.risk import RiskGate
from gordon_manager.db.connect import connect
from gordon_manager.errors import ConfigurationError
from gordon_manager.events.breaker import BreakerEvent

AT = datetime(2024, 1, 1, 12, 30, 15, 250000, tzinfo=UTC)


# -- contract --------------------------------------------------------------------------------------
def test_parse_report_reads_a_fill_in_camel_case() -> None:
    report = contract.parse_report(json.dumps({
        "type": "fill", "fillId": "binance-123", "clientOrderId": "gb7-1704067200000-0", "qty": "0.00000001",
        "price": "42000.5", "fee": "0", "liquidity": "maker", "ts": "2024-01-01T12:30:15.25Z", "extra": "ignored",
    }).encode())
    assert isinstance(report, contract.FillReport)
    assert (report.fill_id, report.client_order_id, report.qty, report.price, report.fee, report.liquidity,
            report.ts) == ("binance-123", "gb7-1704067200000-0", Decimal("0.00000001"), Decimal("42000.5"),
                           Decimal(0), "maker", AT)


def test_parse_report_reads_a_status() -> None:
    report = contract.parse_report(b'{"type": "status", "clientOrderId": "gb7-1-0", "status": "rejected",'
                                   b' "reason": "LOT_SIZE", "ts": "2024-01-01T13:30:15.25+01:00"}')
    assert isinstance(report, contract.StatusReport)
    assert (report.status, report.reason, report.ts) == ("rejected", "LOT_SIZE", AT)


GOOD_FILL = {"type": "fill", "fillId": "f1", "clientOrderId": "gb7-1-0", "qty": "1", "price": "100", "fee": "0.1",
             "ts": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize("change", [
    {"type": "trade"},  # unknown discriminator
    {"type": None},
    {"ts": "2024-01-01T00:00:00"},  # no offset
    {"ts": None},
    {"qty": "0"}, {"qty": "-1"}, {"price": "0"}, {"fee": "-0.01"}, {"qty": "abc"},
    {"fillId": ""}, {"fillId": "x" * 129},
    {"clientOrderId": "has space"}, {"clientOrderId": "x" * 65}, {"clientOrderId": ""},
    {"liquidity": "both"},
])
def test_parse_report_rejects_an_invalid_fill(change) -> None:
    data = {**GOOD_FILL, **change}
    with pytest.raises(pydantic.ValidationError):
        contract.parse_report(json.dumps(data).encode())


@pytest.mark.parametrize("data", [
    {"type": "status", "clientOrderId": "gb7-1-0", "status": "filled", "ts": "2024-01-01T00:00:00Z"},
    {"type": "status", "clientOrderId": "gb7-1-0", "status": "accepted", "reason": "x" * 501,
     "ts": "2024-01-01T00:00:00Z"},
    {"type": "status", "clientOrderId": "gb7-1-0", "ts": "2024-01-01T00:00:00Z"},
])
def test_parse_report_rejects_an_invalid_status(data) -> None:
    with pytest.raises(pydantic.ValidationError):
        contract.parse_report(json.dumps(data).encode())


def test_parse_report_rejects_what_is_not_json() -> None:
    with pytest.raises(pydantic.ValidationError):
        contract.parse_report(b"fill f1 1@100")
    with pytest.raises(pydantic.ValidationError):
        contract.parse_report(GOOD_FILL["fillId"].encode())


def test_intents_carry_decimals_as_plain_strings_and_utc_times_with_z() -> None:
    intent = contract.NewOrderIntent(client_order_id="gb7-1-0", bot_id=7, symbol="BTCUSDT", side="buy",
                                     order_type="limit", qty=Decimal("1E-8"), price=Decimal("4.2E+4"),
                                     reason="entry", bar_at=datetime(2024, 1, 1, tzinfo=UTC),
                                     ref_price=Decimal("42000.00"), created_at=AT)
    wire = json.loads(intent.wire())
    assert wire == {"type": "new", "clientOrderId": "gb7-1-0", "botId": 7, "runId": None, "symbol": "BTCUSDT",
                    "side": "buy", "orderType": "limit", "qty": "0.00000001", "price": "42000",
                    "reduceOnly": False, "ocoGroup": None, "reason": "entry", "barAt": "2024-01-01T00:00:00Z",
                    "refPrice": "42000.00", "createdAt": "2024-01-01T12:30:15.250000Z"}
    # a Python dump keeps the exact Decimal (the string is only the JSON form)
    assert intent.model_dump()["qty"] == Decimal("1E-8")
    # and what goes out comes back identical
    assert contract.NewOrderIntent.model_validate_json(intent.wire()) == intent

    cancel = contract.CancelIntent(client_order_id="gb7-1-0-x", orig_client_order_id="gb7-1-0", bot_id=7,
                                   symbol="BTCUSDT", reason="stop", created_at=AT)
    assert json.loads(cancel.wire()) == {"type": "cancel", "clientOrderId": "gb7-1-0-x",
                                         "origClientOrderId": "gb7-1-0", "botId": 7, "symbol": "BTCUSDT",
                                         "reason": "stop", "createdAt": "2024-01-01T12:30:15.250000Z"}


@pytest.mark.parametrize("change", [{"qty": Decimal(0)}, {"price": Decimal("-1")}, {"side": "short"},
                                    {"order_type": "stop_limit"}, {"reason": "yolo"},
                                    {"client_order_id": "gb7/1"}])
def test_an_invalid_intent_cannot_be_built(change) -> None:
    values = dict(client_order_id="gb7-1-0", bot_id=7, symbol="BTCUSDT", side="sell", order_type="stop",
                  qty=Decimal(1), price=Decimal(95), reason="stop_loss", created_at=AT)
    with pytest.raises(pydantic.ValidationError):
        contract.NewOrderIntent(**{**values, **change})


def test_subjects_and_consumer_names() -> None:
    assert contract.intents_subject(7) == "orders.intents.7"
    assert contract.reports_subject(7) == "orders.fills.7"
    assert contract.consumer_name(7) == "bot-7"


# -- labels ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, mode", [
    ({}, "paper"), ({}, "live"),
    ({"team": "alpha", "replayed": "no"}, "live"),  # not replay.* labels: not ours to judge
    ({"replay.speed": "0"}, "paper"),
    ({"replay.speed": "12.5", "replay.from": "2024-01-01T00:00:00Z"}, "shadow"),
    ({"replay.speed": "1", "replay.from": "2024-01-01T01:00:00+01:00"}, "paper"),
])
def test_valid_labels(labels, mode) -> None:
    assert label_errors(labels, mode=mode) == []


@pytest.mark.parametrize("labels, mode, expected", [
    ({"replay.speed": "fast"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "-1"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "nan"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "inf"}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": ""}, "paper", ["labels.replay.speed"]),
    ({"replay.speed": "1", "replay.from": "yesterday"}, "paper", ["labels.replay.from"]),
    ({"replay.speed": "1", "replay.from": "2024-01-01T00:00:00"}, "paper", ["labels.replay.from"]),  # no offset
    ({"replay.from": "2024-01-01T00:00:00Z"}, "paper", ["labels.replay.from"]),  # without a speed
    ({"replay.sped": "1"}, "paper", ["labels.replay.sped"]),
    ({"replay.speed": "1"}, "live", ["labels"]),
    ({"replay.from": "2024-01-01T00:00:00Z"}, "live", ["labels.replay.from", "labels"]),
    ({"replay.loop": "yes", "replay.speed": "x"}, "live", ["labels.replay.loop", "labels.replay.speed", "labels"]),
])
def test_label_errors_name_each_field(labels, mode, expected) -> None:
    errors = label_errors(labels, mode=mode)
    assert [e["field"] for e in errors] == expected
    assert all(e["message"] for e in errors)


def test_label_error_messages_say_what_is_expected() -> None:
    [unknown] = label_errors({"replay.sped": "1"}, mode="paper")
    assert "replay.speed" in unknown["message"] and "replay.from" in unknown["message"]
    [missing] = label_errors({"replay.from": "2024-01-01T00:00:00Z"}, mode="paper")
    assert missing["message"] == "needs replay.speed"
    [live] = label_errors({"replay.speed": "1"}, mode="live")
    assert "live" in live["message"]


def test_replay_settings() -> None:
    assert replay_settings({}) == (None, None)
    assert replay_settings({"replay.speed": "0"}) == (0.0, None)
    assert replay_settings({"replay.speed": "2.5", "replay.from": "2024-01-01T01:00:00+01:00"}) == (
        2.5, datetime(2024, 1, 1, tzinfo=UTC))
    _, start = replay_settings({"replay.from": "2024-01-01T00:00:00Z", "replay.speed": "1"})
    assert start == datetime(2024, 1, 1, tzinfo=UTC) and start.utcoffset() == timedelta(0)


@pytest.mark.parametrize("labels, fragment", [
    ({"replay.speed": "-2"}, "labels.replay.speed"),
    ({"replay.from": "2024-01-01T00:00:00Z"}, "needs replay.speed"),
    ({"replay.speed": "1", "replay.bogus": "1"}, "labels.replay.bogus"),
])
def test_replay_settings_raise_configuration_error(labels, fragment) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        replay_settings(labels)


# -- risk gate ----------------------------------------------------------------------------------------
T1 = datetime(2024, 1, 1, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T2 + timedelta(hours=1)


@pytest.fixture
async def risk_conn(database) -> AsyncIterator[asyncpg.Connection]:
    """An admin connection inside a transaction that is always rolled back.

    The session's database is shared: other tests leave halts and (global) breakers behind, and a
    global halt of ours must never reach their bots. In the transaction the risk tables start empty
    (the DELETE is ours alone) and every row a test writes disappears with the rollback.
    """
    conn = await connect(database.admin_url)
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("DELETE FROM trading.risk_halt")
        await conn.execute("DELETE FROM trading.breaker_state")
        yield conn
    finally:
        await tx.rollback()
        await conn.close()


async def halt(conn, scope: str, *, halted: bool = True, at: datetime = T1) -> None:
    await conn.execute("INSERT INTO trading.risk_halt (scope, halted, reason, actor, updated_at)"
                       " VALUES ($1, $2, 'drawdown', 'gordon-risk', $3)", scope, halted, at)


async def breaker(conn, name: str, state: str, *, scope: str | None = None, at: datetime = T1) -> None:
    await conn.execute("INSERT INTO trading.breaker_state (breaker, state, reason, data, updated_at)"
                       " VALUES ($1, $2, 'loss', $3, $4)"
                       " ON CONFLICT (breaker) DO UPDATE SET state = EXCLUDED.state, data = EXCLUDED.data,"
                       " updated_at = EXCLUDED.updated_at",
                       name, state, {} if scope is None else {"scope": scope}, at)


def event(name: str, state: str, *, at: datetime, scope: str | None = None) -> BreakerEvent:
    return BreakerEvent(breaker=name, state=state, reason="test", at=at, scope=scope)


def gate() -> RiskGate:
    return RiskGate(bot_id=7, symbol="BTCUSDT")


async def test_nothing_recorded_blocks_nothing(risk_conn) -> None:
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() is None


@pytest.mark.parametrize("scope", ["global", "symbol:BTCUSDT", "bot:7"])
async def test_a_halt_in_scope_blocks(risk_conn, scope) -> None:
    await halt(risk_conn, scope)
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() == f"risk_halt:{scope}"


@pytest.mark.parametrize("scope", [None, "global", "symbol:BTCUSDT", "bot:7"])
async def test_a_breaker_in_scope_blocks(risk_conn, scope) -> None:
    await breaker(risk_conn, "daily_loss", "open", scope=scope)
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:daily_loss"


async def test_half_open_blocks_too(risk_conn) -> None:
    await breaker(risk_conn, "probe", "half_open", scope="bot:7")
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:probe"


async def test_other_scopes_and_released_states_do_not_block(risk_conn) -> None:
    for scope in ("symbol:ETHUSDT", "bot:8", "bot:70", "symbol:BTCUSD", "scope-x"):
        await halt(risk_conn, scope)
        await breaker(risk_conn, f"brk-{scope}", "open", scope=scope)
    await halt(risk_conn, "global", halted=False)
    await breaker(risk_conn, "closed-one", "closed")
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() is None
    # the gate follows the table: a halt blocks, and lifting it unblocks, at the next refresh
    lift = "UPDATE trading.risk_halt SET halted = $1, updated_at = $2 WHERE scope = 'global'"
    await risk_conn.execute(lift, True, T2)
    await g.refresh(risk_conn)
    assert g.blocked() == "risk_halt:global"
    await risk_conn.execute(lift, False, T3)
    await g.refresh(risk_conn)
    assert g.blocked() is None


async def test_a_breaker_event_newer_than_its_row_wins(risk_conn) -> None:
    await breaker(risk_conn, "daily_loss", "open", at=T1)
    g = gate()
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:daily_loss"
    g.on_breaker(event("daily_loss", "closed", at=T2))
    assert g.blocked() is None
    await g.refresh(risk_conn)  # the row is older than what NATS told us
    assert g.blocked() is None
    await breaker(risk_conn, "daily_loss", "open", at=T3)  # and a newer row wins again
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:daily_loss"


async def test_a_breaker_event_older_than_its_row_does_not(risk_conn) -> None:
    await breaker(risk_conn, "daily_loss", "open", at=T2)
    g = gate()
    g.on_breaker(event("daily_loss", "closed", at=T1))  # before the first refresh
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:daily_loss"
    g.on_breaker(event("daily_loss", "closed", at=T1))  # and after it
    assert g.blocked() == "breaker:daily_loss"


async def test_an_event_applies_only_in_its_scope(risk_conn) -> None:
    g = gate()
    g.on_breaker(event("other_bot", "open", at=T1, scope="bot:8"))
    assert g.blocked() is None
    g.on_breaker(event("mine", "open", at=T1, scope="symbol:BTCUSDT"))
    assert g.blocked() == "breaker:mine"


async def test_a_breaker_known_only_from_an_event_survives_refresh(risk_conn) -> None:
    g = gate()
    g.on_breaker(event("fresh", "open", at=T1))
    await g.refresh(risk_conn)
    assert g.blocked() == "breaker:fresh"
    # and a later event releases it
    g.on_breaker(event("fresh", "closed", at=T2, scope="global"))
    await g.refresh(risk_conn)
    assert g.blocked() is None


async def test_the_gate_reads_what_the_bot_role_may_read(database) -> None:
    # A bot logs in as gordon_bot: the SELECT must be allowed to it (migration 0015's grants).
    conn = await connect(database.bot_url)
    try:
        g = gate()
        await g.refresh(conn)  # raises InsufficientPrivilegeError without the grant
    finally:
        await conn.close()


def test_applies_treats_a_missing_scope_as_global() -> None:
    g = gate()
    assert g.applies(None) and g.applies("global") and g.applies("bot:7") and g.applies("symbol:BTCUSDT")
    assert g.applies("")  # an empty scope is no scope: global
    assert not g.applies("bot:8") and not g.applies("symbol:btcusdt") and not g.applies("bot:07")
