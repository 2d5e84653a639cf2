"""Several HTTP worker processes on one host: which one runs the background services.

Every worker serves HTTP and /ws. Exactly one — the holder of an exclusive ``flock`` on
``<data dir>/background.lock`` — runs the background services (reconciler, deploys, backtests,
file-SD, drift, the NATS breaker consumer). The lock dies with its process, so when that worker is
replaced the new one takes it. The other workers run the WS hub from Postgres NOTIFY (breaker
deltas included: a durable NATS consumer shared by several workers would split its messages
between them) and their own stack prober, so /healthz answers the same on every worker.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os

from gordon_manager.context import AppContext

LOCK_NAME = "background.lock"


class BackgroundLock:
    """An exclusive, non-blocking flock held for the life of this process (released by close())."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, ctx: AppContext) -> BackgroundLock | None:
        """The lock, or None when another worker of this host holds it."""
        ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(ctx.settings.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd)

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def runs_background(ctx: AppContext) -> bool:
    """True when this process should run the background services."""
    if ctx.settings.workers <= 1:
        return True
    lock = BackgroundLock.try_acquire(ctx)
    if lock is None:
        return False
    ctx.services.background_lock = lock
    return True


async def start_api_worker(ctx: AppContext) -> None:
    """What a worker without the background role runs: the WS hub (NOTIFY only) and a prober."""
    from gordon_manager.events.service import start as start_events
    from gordon_manager.observability.start import start_prober

    notify_only = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"bus_nats_url": None}))
    await start_events(notify_only)
    start_prober(ctx)
