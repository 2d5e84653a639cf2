"""Subscriber and hub mechanics with an in-memory sink: overflow, hold/release, timeouts, health signals."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gordon_manager.events.hub import Hub
from gordon_manager.events.protocol import events_frame, outbox_item
from gordon_manager.events.subscriber import Subscriber, SubscriberStalled
from gordon_manager.health.state import HealthState
from tests.events.helpers import metric_value, until


class MemorySink:
    """A sink whose writability the test controls; records what was written."""

    kind = "memory"

    def __init__(self, *, writable: bool = True) -> None:
        self.written: list[dict] = []
        self.writable = asyncio.Event()
        if writable:
            self.writable.set()
        self.aborted = False
        self.closing = False

    def ready(self) -> bool:
        return self.writable.is_set() and not self.closing

    def write(self, frame) -> None:
        self.written.append(orjson.loads(frame.payload))

    async def send(self, frame) -> None:
        await self.writable.wait()
        self.write(frame)

    def abort(self) -> None:
        self.aborted = True

    def fast_path(self):
        return self.writable.is_set, lambda: self.closing, self._write_wire

    def _write_wire(self, wire: bytes) -> None:
        length = wire[1] & 0x7F
        self.written.append(orjson.loads(wire[2 if length < 126 else 4 if length == 126 else 10:]))


def frame(event_id: int, channel: str = "bot_events"):
    item = outbox_item(event_id, channel, {"op": "insert", "table": channel, "row": {"n": event_id}})
    return events_frame(channel, [event_id], [item])


def ids(written: list[dict]) -> list:
    out = []
    for f in written:
        if f["type"] == "event":
            out.append(f["id"])
        elif f["type"] == "batch":
            out += [e["id"] for e in f["events"]]
        else:
            out.append(f["type"])
    return out


def subscriber(sink, *, queue_size=3, timeout=5.0, overflows=None):
    return Subscriber(sink, queue_size=queue_size, send_timeout_s=timeout,
                      on_overflow=(overflows.append if overflows is not None else lambda s: None))


async def test_fast_path_writes_immediately_and_queue_when_not_writable():
    sink = MemorySink()
    sub = subscriber(sink)
    sub.channels.add("bot_events")
    assert sub.offer(frame(1)) == 1 and ids(sink.written) == [1]
    sink.writable.clear()
    assert sub.offer(frame(2)) == 0 and sub.queued == 1
    sink.writable.set()  # queued frames keep their order even though the socket is writable again
    assert sub.offer(frame(3)) == 0 and sub.queued == 2
    writer = asyncio.ensure_future(sub.run_writer())
    await until(lambda: len(sink.written) >= 3)  # the writer sent what was queued
    assert ids(sink.written) == [1, 2, 3] and sub.queued == 0
    writer.cancel()


async def test_overflow_drops_backlog_sends_resync_then_resumes():
    sink = MemorySink(writable=False)
    overflows: list = []
    sub = subscriber(sink, queue_size=2, overflows=overflows)
    sub.channels.add("bot_events")
    for i in range(1, 6):
        sub.offer(frame(i))
    assert len(overflows) == 1 and sub.overflows == 1  # counted once per episode
    assert sub.queued == 1  # only the resync is left
    writer = asyncio.ensure_future(sub.run_writer())
    sink.writable.set()
    await until(lambda: sink.written)  # the resync went out: live frames flow again
    sub.offer(frame(6))
    assert ids(sink.written) == ["resync", 6]
    assert sink.written[0]["reason"] == "overflow" and sink.written[0]["channels"] == ["bot_events"]
    writer.cancel()


async def test_writer_times_out_on_a_stalled_client():
    sink = MemorySink(writable=False)
    sub = subscriber(sink, timeout=0.05)
    sub.offer(frame(1))
    with pytest.raises(SubscriberStalled):
        await sub.run_writer()


async def test_put_waits_for_room_and_gives_up_after_the_timeout():
    sink = MemorySink(writable=False)
    sub = subscriber(sink, queue_size=1, timeout=0.05)
    await sub.put(frame(1))
    with pytest.raises(SubscriberStalled):
        await sub.put(frame(2))
    writer = asyncio.ensure_future(sub.run_writer())
    sink.writable.set()
    await sub.put(frame(3))
    await until(lambda: len(sink.written) >= 2)  # the writer sent frame 1, then frame 3 went out
    assert ids(sink.written) == [1, 3]
    writer.cancel()


async def test_hold_and_release_skip_what_the_replay_sent():
    sink = MemorySink()
    sub = subscriber(sink, queue_size=10)
    sub.channels.update({"bot_events", "bot_status"})
    sub.hold(["bot_events"])
    a = outbox_item(5, "bot_events", {"op": "insert", "table": "t", "row": {}})
    b = outbox_item(6, "bot_events", {"op": "insert", "table": "t", "row": {}})
    sub.offer(events_frame("bot_events", [5, 6], [a, b]))
    sub.offer(frame(7))
    sub.offer(frame(8, "bot_status"))  # not held
    assert ids(sink.written) == [8]
    sub.release(["bot_events"], skip_ids={5})
    assert ids(sink.written) == [8, 6, 7]


async def test_held_frames_are_bounded_too():
    sink = MemorySink()
    overflows: list = []
    sub = subscriber(sink, queue_size=2, overflows=overflows)
    sub.hold(["bot_events"])
    for i in range(4):
        sub.offer(frame(i))
    assert len(overflows) == 1


def make_hub(health: HealthState, **overrides) -> Hub:
    values = dict(health=health, queue_size=4, batch_window_s=0.0, send_timeout_s=1.0, overflow_threshold=1,
                  storm_per_s=2.0, breaker_source="notify")
    values.update(overrides)
    return Hub(**values)


async def test_hub_health_signals_raise_and_clear():
    health = HealthState()
    hub = make_hub(health)
    hub.storm_window_s = 2.0
    hub.overflow_window_s = 0.2
    subs = [hub.new_subscriber(MemorySink()) for _ in range(4)]
    assert "ws_reconnect_storm" not in health.degraded  # 4 in 2 s = 2/s: not above 2/s
    subs.append(hub.new_subscriber(MemorySink()))
    assert "ws_reconnect_storm" in health.degraded
    hub.storm_window_s = 0.1  # let it subside quickly
    before = metric_value("gordon_manager_ws_overflow_total")
    stalled = MemorySink(writable=False)
    sub = hub.new_subscriber(stalled)
    hub.attach(sub, ["bot_events"])
    for i in range(20):
        hub.publish("bot_events", outbox_item(i, "bot_events", {"row": {}}), i)
        hub.flush()
        sub._resync = None  # pretend the resync went out, so each overflow counts
        sub._refresh()
    assert metric_value("gordon_manager_ws_overflow_total") > before + 1
    assert "ws_subscriber_overload" in health.degraded
    # Deliberate passage of time, what the test is about: both windows (0.1 s, 0.2 s) run out.
    await asyncio.sleep(0.25)
    hub.evaluate_health()
    assert health.degraded == []
    for s in subs + [sub]:
        hub.drop_subscriber(s)
    hub.drop_subscriber(sub)  # idempotent
    hub.close()


async def test_hub_delivery_log_finds_late_commits():
    hub = make_hub(HealthState())
    for event_id in (10, 12, 11, 13, 9):
        hub.publish("bot_events", b"{}", event_id)
    hub.flush()
    assert hub.late_ids_after(12) == [11, 9]
    assert hub.late_ids_after(13) == [9]
    assert hub.late_ids_after(99) == []  # unknown position: nothing known to add
    assert hub.last_id == 13


async def test_fast_path_never_writes_to_a_closing_transport():
    sink = MemorySink()
    sub = subscriber(sink)
    sink.closing = True
    assert sub.offer(frame(1)) == 0 and sink.written == [] and sub.queued == 1
    sub.closed = True
    assert sub.offer(frame(2)) == 0 and sub.queued == 1


async def test_replayed_ids_arriving_live_after_the_release_are_dropped_for_a_while():
    sink = MemorySink()
    sub = subscriber(sink, queue_size=10)
    sub.hold(["bot_events"])
    sub.release(["bot_events"], skip_ids={5, 6})
    sub.offer(frame(5))  # its NOTIFY was late: already replayed
    sub.offer(frame(7))
    assert ids(sink.written) == [7]
    sub._skip_until = 0.0  # the window is over: ids are no longer checked
    sub.offer(frame(6))
    assert ids(sink.written) == [7, 6] and sub._plain
