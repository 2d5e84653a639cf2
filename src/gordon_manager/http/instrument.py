"""Counting and timing of console reads: ``gordon_manager_bff_reads_total`` / ``_read_duration_seconds``."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gordon_manager.observability import metrics

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def bff_read(endpoint: str) -> Callable[[F], F]:
    """Decorate a route handler so each call is counted and timed under the stable name ``endpoint``.

    The label children are resolved once here, not per request (the equity page is a hot path).
    Failed reads (4xx/5xx raised by the handler) are counted and timed too.
    """
    reads = metrics.BFF_READS.labels(endpoint=endpoint)
    duration = metrics.BFF_READ_DURATION.labels(endpoint=endpoint)

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await handler(*args, **kwargs)
            finally:
                reads.inc()
                duration.observe(time.perf_counter() - started)

        return wrapper  # type: ignore[return-value]  # same signature as handler (functools.wraps)

    return decorate
