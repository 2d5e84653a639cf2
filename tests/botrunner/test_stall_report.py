"""A bot whose stop takes long says where it waits (a supervisor may SIGKILL it soon after)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gordon_manager.botrunner import main as botmain
from gordon_manager.botrunner.main import BotEnv, BotRunner


async def test_a_stalled_stop_logs_every_tasks_stack(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(botmain, "STALL_REPORT_S", 0.05)
    runner = BotRunner(BotEnv(bot_id=7, database_url="postgresql://unused", token="t"))
    never = asyncio.Event()

    async def wait_for_a_lock_that_never_comes() -> None:
        await never.wait()

    async def write_the_batch() -> None:
        await wait_for_a_lock_that_never_comes()

    stuck = asyncio.create_task(write_the_batch(), name="stuck-write")
    try:
        with caplog.at_level(logging.WARNING, logger=botmain.__name__):
            runner.stop()
            runner.stop()  # a second SIGTERM arms no second report
            assert runner.stopping.is_set()
            for _ in range(400):
                if any("still stopping" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
        reports = [r for r in caplog.records if "still stopping" in r.getMessage()]
        assert len(reports) == 1
        tasks = reports[0].tasks
        # the whole await chain, outermost first, down to the future it waits on (not just the top frame)
        chain = tasks["stuck-write"]
        assert [frame.split()[-1] for frame in chain[:3]] == ["write_the_batch", "wait_for_a_lock_that_never_comes",
                                                              "wait"]
        assert chain[2].startswith(asyncio.locks.__file__)
        assert chain[3].startswith("awaiting Future") and len(chain) == 4
        assert reports[0].bot_id == 7
    finally:
        stuck.cancel()
