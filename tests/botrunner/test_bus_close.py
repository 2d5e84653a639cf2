"""A bot's bus closes promptly, even when a cancel of its report puller is lost.

Under load (bench/live_loop.py, 100 bots) bots hung in ``Bus.close()`` after SIGTERM until they were
killed: the stall report's await chains showed ``close`` waiting on the puller, and the puller back in
``fetch``, its cancel swallowed by ``asyncio.wait_for`` inside nats-py (python/cpython#86296).
"""

from __future__ import annotations

import asyncio
import logging

import nats
import pytest
from nats.aio.msg import Msg

from gordon_manager.botrunner import contract
from gordon_manager.botrunner.bus import Bus, cancel_and_wait


async def _swallows_one_cancel(started: asyncio.Event) -> str:
    """Like 3.11's wait_for when its result arrives with the cancel: the first cancel is dropped."""
    started.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        pass  # lost, as inside nats-py
    await asyncio.sleep(30)
    return "never"


async def test_a_swallowed_cancel_is_repeated_until_the_task_ends():
    started = asyncio.Event()
    task = asyncio.create_task(_swallows_one_cancel(started))
    await started.wait()
    task.cancel()  # what close() used to do, once
    await asyncio.wait({task}, timeout=0.2)
    assert not task.done()  # the single cancel was lost: `await task` would wait 30 s (in nats-py: forever)
    async with asyncio.timeout(2):
        await cancel_and_wait(task)
    assert task.cancelled()


async def test_a_task_that_never_ends_is_left_behind_logged(caplog: pytest.LogCaptureFixture):
    async def immortal() -> None:
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        async with asyncio.timeout(2):
            await cancel_and_wait(task, wait_s=0.01, attempts=5)
    assert not task.done()
    assert any(r.getMessage() == "a task did not end when cancelled" and r.task == "immortal" for r in caplog.records)
    task.get_coro().close()  # type: ignore[union-attr]  # end it for good: cancel would be swallowed again
    await asyncio.sleep(0)


async def test_close_ends_while_reports_keep_arriving(nats_server):
    """A live bus against the real JetStream, closed again and again while reports stream in."""
    publisher = await nats.connect(nats_server.url)
    js = publisher.jetstream()
    stop = asyncio.Event()

    async def report_storm() -> None:
        n = 0
        while not stop.is_set():
            await js.publish(contract.reports_subject(7), b"{}")
            n += 1
            if n % 20 == 0:
                await asyncio.sleep(0)

    storm = None
    try:
        for _ in range(15):
            got = asyncio.Event()
            bus = Bus(url=nats_server.url, bot_id=7, live=True, on_report=got.set, on_breaker=lambda event: None)
            assert await bus.connect()
            if storm is None:  # the streams exist once the first bus made them
                storm = asyncio.create_task(report_storm())
            async with asyncio.timeout(10):
                await got.wait()  # the puller is fetching reports
            closing = asyncio.create_task(bus.close())
            await asyncio.wait({closing}, timeout=5)
            assert closing.done(), "Bus.close() hangs"
            assert not bus.ready and not bus.connected
            while not bus.reports.empty():  # unacknowledged: redelivered to the next bus
                bus.reports.get_nowait()
    finally:
        stop.set()
        if storm is not None:
            await storm
        await publisher.close()


async def test_close_ends_when_a_report_arrives_with_the_cancel(nats_server):
    """The exact race: a report lands in the puller's queue in the same loop iteration as close()'s cancel.

    nats-py's ``next_msg`` then returns the report instead of raising CancelledError (the queue's get
    completes first, 3.11's ``wait_for`` returns its result), the puller fetches again, and a single
    ``cancel(); await puller`` never returns. Deterministic: both happen before the loop runs again.
    """
    bus = Bus(url=nats_server.url, bot_id=8, live=True, on_report=lambda: None, on_breaker=lambda event: None)
    assert await bus.connect()
    sub = bus._sub
    assert sub is not None
    for _ in range(20):  # the puller is parked in fetch → next_msg, waiting on the subscription's queue
        await asyncio.sleep(0.01)
    report = Msg(bus._nc, subject=contract.reports_subject(8), data=b"{}")
    sub._sub._pending_queue.put_nowait(report)  # the report arrives (the pull subscription's own queue)...
    closing = asyncio.create_task(bus.close())  # ...with the cancel (close() cancels before its first await)
    await asyncio.wait({closing}, timeout=3)  # not asyncio.timeout around close(): a lost cancel eats it too
    assert closing.done(), "Bus.close() hangs: the puller's cancel was lost"
    closing.result()
    assert not bus.ready
