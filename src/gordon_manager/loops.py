"""LoopService: the one shape of every background loop (prefect style).

A loop implements ``run_once()``; the base runs it every ``interval`` seconds (or sooner when
``wake()`` is called), logs and survives a failed iteration, warns when an iteration overruns its
interval, and stops cooperatively. Loops are owned by a ``Supervisor``, never by a bare
``create_task``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from gordon_manager.observability import metrics

T = TypeVar("T")

logger = logging.getLogger(__name__)


class LoopService:
    """Base class of background loops."""

    name = "loop"
    # Loops whose iteration blocks on an event stream by design do not warn about overruns.
    warn_overrun = True

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.iterations = 0
        self.failures = 0

    async def run_once(self) -> None:  # pragma: no cover - abstract
        """One iteration."""
        raise NotImplementedError

    async def setup(self) -> None:
        """Called once before the first iteration."""

    async def teardown(self) -> None:
        """Called once after the last iteration."""

    def wake(self) -> None:
        """Run the next iteration now instead of at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to stop after the current iteration."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def until_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """Await ``awaitable`` unless the loop is asked to stop first (then cancel it and return None)."""
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None

    async def run(self) -> None:
        """Run until stopped."""
        await self.setup()
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                started = time.perf_counter()
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a failed iteration must never kill the loop
                    self.failures += 1
                    metrics.ERRORS.labels(component=self.name, kind=type(exc).__name__).inc()
                    logger.exception("loop iteration failed", extra={"loop": self.name})
                self.iterations += 1
                elapsed = time.perf_counter() - started
                if self.warn_overrun and elapsed > self.interval and not self.stopping:
                    logger.warning("loop iteration overran its interval",
                                   extra={"loop": self.name, "elapsed_s": round(elapsed, 3), "interval_s": self.interval})
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, self.interval - elapsed))
                except TimeoutError:
                    pass
        finally:
            await self.teardown()


class Supervisor:
    """Starts loops as tasks and stops them together."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loops: list[LoopService] = []

    @property
    def loops(self) -> tuple[LoopService, ...]:
        return tuple(self._loops)

    def start(self, loop: LoopService) -> None:
        """Run ``loop`` in a supervised task."""
        self._loops.append(loop)
        self._tasks[loop.name] = asyncio.create_task(loop.run(), name=f"loop:{loop.name}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop every loop cooperatively, cancelling those that do not stop in time."""
        for loop in self._loops:
            loop.stop()
        tasks = list(self._tasks.values())
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        self._loops.clear()
