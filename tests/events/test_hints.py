"""The hint relay: NOTIFY 'klines' and risk changes reach the bots over core NATS (real PG and NATS)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import nats

from gordon_manager.botrunner.contract import HINT_RISK_SUBJECT, klines_hint_subject
from gordon_manager.events.hints import HintRelay
from gordon_manager.observability import metrics
from tests.events.helpers import until


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
