"""Listener details: the sequencer, odd NOTIFY payloads, a dead connection found by the ping."""

from __future__ import annotations

import time

from gordon_manager.events.listener import Sequencer
from tests.events.helpers import metric_value, until, ws_client


def test_sequencer_dedupes_tracks_gaps_and_forgets():
    seq = Sequencer(remember=4, max_span=3, gap_ttl_s=60)
    seq.start(10)
    assert seq.accept(11) and not seq.accept(11)
    assert seq.accept(14)  # 12 and 13 are in flight (or rolled back)
    assert seq.replay_plan() == (14, [12, 13])
    assert seq.accept(13) and seq.replay_plan() == (14, [12])
    assert seq.accept(30)  # a jump wider than max_span: not tracked id by id
    assert seq.replay_plan() == (30, [12])
    for event_id in (31, 32, 33, 34):
        seq.accept(event_id)
    assert seq.accept(11)  # forgotten (remember=4): seen again as new, harmlessly
    seq._gaps[12] = time.monotonic() - 120  # a gap older than the TTL was a rollback
    assert seq.replay_plan() == (34, [])


def test_sequencer_gaps_stay_bounded_without_a_reconnect():
    """100,000 events each leaving a gap: the gap set never grows past max_gaps, and expired gaps go as new
    events come, not only at the next reconnect."""
    seq = Sequencer(max_span=10, gap_ttl_s=60, max_gaps=1000)
    seq.start(0)
    for k in range(1, 100_001):
        seq.accept(2 * k)  # every odd id missing
        assert seq.gap_count <= 1000
    high, gaps = seq.replay_plan()
    assert high == 200_000 and len(gaps) == 1000 and gaps[-1] == 199_999  # the newest gaps are the ones kept
    for event_id in list(seq._gaps):
        seq._gaps[event_id] = time.monotonic() - 120  # all older than the TTL (rolled back)
    seq.accept(200_002)  # a new event expires them, with no reconnect
    assert seq.replay_plan() == (200_002, [200_001])


async def test_odd_notify_payloads_are_counted_and_skipped(manager, admin, bot_id):
    errors = metric_value("gordon_errors_total", component="events_listener", kind="bad_payload")
    async with ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events"])
        await admin.execute("SELECT pg_notify('bot_events', 'not json')")
        await admin.execute("SELECT pg_notify('bot_events', '{\"id\": 999999999, \"channel\": \"bot_events\"}')")
        await admin.execute("SELECT pg_notify('bot_events', 'still not json')")  # while the fetch is queued
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'real')", bot_id)
        [event] = await client.events(1)
        assert event["data"]["message"] == "real"
    assert metric_value("gordon_errors_total", component="events_listener", kind="bad_payload") >= errors + 2


async def test_a_dead_listen_connection_is_found_by_the_ping(manager, admin, bot_id):
    listener, listen = manager.events.listener, manager.ctx.services.listen
    reconnects = listener.reconnects
    # Pretend nothing told us: no termination callback, only the periodic ping can notice.
    listen._conn.remove_termination_listener(listen._on_terminated)
    await admin.execute("SELECT pg_terminate_backend($1)", listen.server_pid)
    listen.wake()
    await until(lambda: listener.reconnects == reconnects + 1, timeout=10)
    async with ws_client(manager.ws_url) as client:
        await client.subscribe(["bot_events"])
        await admin.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', 'after')", bot_id)
        assert [e["data"]["message"] for e in await client.events(1)] == ["after"]
