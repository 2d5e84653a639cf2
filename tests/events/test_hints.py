"""The hint relay: NOTIFY 'klines' and risk changes reach the bots over core NATS (real PG and NATS)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import jsonschema_rs
import nats

from gordon_manager.botrunner.contract import HINT_RISK_SUBJECT, klines_hint_subject
from gordon_manager.botrunner.hinted import parse
from gordon_manager.events.hints import HintRelay
from gordon_manager.execution import Bar
from gordon_manager.observability import metrics
from tests.events.helpers import until
from tests.events.test_asyncapi import DOC


class Inbox:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def cb(self, message) -> None:
        self.subjects.append(message.subject)


async def insert_bar(admin, symbol: str, interval: str = "1m") -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=len(symbol))
    await admin.execute(
        "INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
        " VALUES ($1, $2, $3, $4, 1, 1, 1, 1, 1)", symbol, interval, at, at + timedelta(seconds=59))


def hints_counted(outcome: str) -> float:
    return metrics.HINTS.labels(outcome=outcome)._value.get()


def test_hint_subjects_are_valid_nats_subjects_or_none():
    assert klines_hint_subject("BTCUSDT", "1m") == "gordon.hints.klines.BTCUSDT.1m"
    for symbol, interval in (("BTC.USDT", "1m"), ("BTC*", "1m"), ("BTC", "1 m"), ("", "1m"), ("BTC", ">")):
        assert klines_hint_subject(symbol, interval) is None


async def test_new_bars_and_risk_changes_are_relayed_as_hints(nats_server, start_manager, admin):
    symbol = "H" + uuid.uuid4().hex[:8].upper()
    nc = await nats.connect(nats_server.url, connect_timeout=2, max_reconnect_attempts=0)
    bars, risk, other = Inbox(), Inbox(), Inbox()
    try:
        await nc.subscribe(klines_hint_subject(symbol, "1m"), cb=bars.cb)
        await nc.subscribe(HINT_RISK_SUBJECT, cb=risk.cb)
        await nc.subscribe(klines_hint_subject(symbol, "5m"), cb=other.cb)
        await nc.flush()
        async with start_manager(bus_nats_url=nats_server.url) as manager:
            relay = next(s for s in manager.ctx.supervisor.loops if isinstance(s, HintRelay))
            await until(lambda: relay.listening and len(risk.subjects) >= 1, timeout=10)  # the start hint
            await insert_bar(admin, symbol)
            await until(lambda: bars.subjects == [klines_hint_subject(symbol, "1m")], timeout=10)
            before = len(risk.subjects)
            await admin.execute("INSERT INTO trading.risk_halt (scope, halted, reason, actor) VALUES ($1, true, 't', 't')",
                                f"symbol:{symbol}")
            await until(lambda: len(risk.subjects) > before, timeout=10)
            dropped = hints_counted("dropped")
            # the table's checks keep symbols to NATS-safe tokens; a stray NOTIFY is dropped and counted
            await admin.execute("SELECT pg_notify('klines', $1)", f"{symbol}.X:1m")
            await until(lambda: hints_counted("dropped") > dropped, timeout=10)
            await nc.flush()
            assert other.subjects == [] and bars.subjects == [klines_hint_subject(symbol, "1m")]
    finally:
        await nc.close()


async def test_the_relay_comes_back_after_postgres_drops_its_connection(nats_server, start_manager, admin):
    symbol = "R" + uuid.uuid4().hex[:8].upper()
    nc = await nats.connect(nats_server.url, connect_timeout=2, max_reconnect_attempts=0)
    bars = Inbox()
    try:
        await nc.subscribe(klines_hint_subject(symbol, "1m"), cb=bars.cb)
        await nc.flush()
        async with start_manager(bus_nats_url=nats_server.url) as manager:
            relay = next(s for s in manager.ctx.supervisor.loops if isinstance(s, HintRelay))
            listen = manager.ctx.services.listen
            await until(lambda: relay.listening, timeout=10)
            pid = listen.server_pid
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await until(lambda: relay.listening and listen.server_pid != pid, timeout=15)
            await insert_bar(admin, symbol)
            await until(lambda: bars.subjects, timeout=10)
    finally:
        await nc.close()


class Bodies:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def cb(self, message) -> None:
        self.bodies.append(message.data)


async def test_a_single_closed_bar_rides_in_its_hint_exactly_as_a_query_reads_it(nats_server, start_manager, admin,
                                                                                  database):
    """Migration 0030: one closed bar per statement → "PREV_TS [bar]" (floats exact whatever the session's
    extra_float_digits); several bars, or a bar still forming → an empty body (the bots query)."""
    symbol = "B" + uuid.uuid4().hex[:8].upper()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)

    def row(k: int, close: float, closes_in: timedelta = minute - timedelta(milliseconds=1)) -> tuple:
        return (symbol, "1m", t0 + k * minute, t0 + k * minute + closes_in, 0.1 + 0.2, 1 / 3, 1e-9, close, 12345.678901234567)

    insert = ("INSERT INTO market_data.klines (symbol, interval, open_time, close_time, open, high, low, close, volume)"
              " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
    nc = await nats.connect(nats_server.url, connect_timeout=2, max_reconnect_attempts=0)
    hints = Bodies()
    pipeline = await asyncpg.connect(database.admin_url, server_settings={"extra_float_digits": "0"})
    try:
        await nc.subscribe(klines_hint_subject(symbol, "1m"), cb=hints.cb)
        await nc.flush()
        async with start_manager(bus_nats_url=nats_server.url) as manager:
            relay = next(s for s in manager.ctx.supervisor.loops if isinstance(s, HintRelay))
            await until(lambda: relay.listening, timeout=10)
            await pipeline.execute(insert, *row(0, 2 / 3))  # the first bar of its market: no bar before it
            await pipeline.executemany(insert, [row(1, 0.7), row(2, 0.8)])  # executemany: one statement each
            async with pipeline.transaction():
                await pipeline.copy_records_to_table("klines", schema_name="market_data",
                                                     records=[row(3, 1.0), row(4, 1.1)],
                                                     columns=["symbol", "interval", "open_time", "close_time", "open",
                                                              "high", "low", "close", "volume"])  # two, one statement
            await pipeline.execute(insert, *row(6, 1.2, closes_in=timedelta(days=3650)))  # forming: not closed yet
            await pipeline.execute(insert, *row(5, 1.3))  # an older bar after a newer one: PREV is the one before it
            await until(lambda: len(hints.bodies) == 6, timeout=10)
        stored = {int(r["ts"]): Bar(int(r["ts"]), r["open"], r["high"], r["low"], r["close"], r["volume"])
                  for r in await admin.fetch(
                      "SELECT (extract(epoch FROM open_time) * 1000)::bigint AS ts, open, high, low, close, volume"
                      " FROM market_data.v_klines_reader WHERE symbol = $1", symbol)}
        ms = [int((t0 + k * minute).timestamp() * 1000) for k in range(7)]
        parsed = [parse(body) for body in hints.bodies]
        assert parsed == [(-1, stored[ms[0]]), (ms[0], stored[ms[1]]), (ms[1], stored[ms[2]]), None, None,
                          (ms[4], stored[ms[5]])]
        assert hints.bodies[3] == b"" and hints.bodies[4] == b""
        contract = DOC["components"]["messages"]["barHint"]["payload"]  # asyncapi.yaml says what goes out
        assert all(jsonschema_rs.validator_for(contract).is_valid(body.decode()) for body in hints.bodies)
        assert not jsonschema_rs.validator_for(contract).is_valid("1 2")
        assert parsed[0][1].open == 0.1 + 0.2 and parsed[0][1].close == 2 / 3  # 17 digits, not extra_float_digits=0's 15
    finally:
        await pipeline.close()
        await nc.close()
