"""Helpers shared by runtime tests: event collection and state polling."""

from __future__ import annotations

import asyncio

from gordon_manager.runtimes import RuntimeEvent


class EventCollector:
    """Consumes a runtime's events() in a task so tests can wait for one."""

    def __init__(self, stream) -> None:
        self.events: list[RuntimeEvent] = []
        self._stream = stream
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for event in self._stream:
            self.events.append(event)
            self._changed.set()

    async def wait_for(
        self, *, bot_id: int, kind: str, timeout_s: float = 2.0, after: int = 0
    ) -> RuntimeEvent:
        """The first event matching bot_id/kind at index >= after, within timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            for event in self.events[after:]:
                if event.bot_id == bot_id and event.kind == kind:
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {kind!r} event for bot {bot_id} within {timeout_s}s; got {self.events}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=remaining)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        """Cancel the consuming task."""
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass


async def wait_for_state(
    runtime, bot_id: int, state: str | None, *, timeout_s: float = 10.0, version: int | None = None
):
    """Poll observe() until the bot is in `state` (None: absent); returns the last Observed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        seen = (await runtime.observe()).get(bot_id)
        if (seen is None and state is None) or (
            seen is not None and seen.state == state and version in (None, seen.config_version)
        ):
            return seen
        if loop.time() > deadline:
            raise AssertionError(f"bot {bot_id} not {state!r} within {timeout_s}s (last: {seen})")
        await asyncio.sleep(0.1)
