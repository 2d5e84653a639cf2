"""Concurrent equity page reads coalesced into one database round trip.

Under load the console's page reads arrive together (64 clients, two workers). Each one on its own
costs a round trip: a send, a backend wake-up, parse/bind/execute, the reply, and asyncpg's
bookkeeping, on both sides of the socket. Here every page requested in the same event-loop turn
goes out as one query: ``unnest`` of the requests, joined laterally to ``trading.equity_page``.
The rows come back tagged with their request. A lone request still goes out at once (the flush is
scheduled with ``call_soon``, not on a timer), so an idle console waits for nothing.

A failure of the batch (the database gone, a timeout) is every request's failure. Each caller then
sees it as its own read would have failed.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from gordon_manager.context import AppContext
from gordon_manager.db.readpool import reading
from gordon_manager.runs import repo

MAX_BATCH = 64

Request = tuple[int, datetime, datetime, int]


class PageBatcher:
    """Collects page requests for one loop turn and answers them from one query."""

    def __init__(self, ctx: AppContext, *, max_batch: int = MAX_BATCH) -> None:
        self._ctx = ctx
        self._max_batch = max_batch
        self._pending: list[tuple[Request, asyncio.Future]] = []
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0
        self.requests = 0

    async def fetch(self, run_id: int, after: datetime, before: datetime, limit: int) -> list[tuple]:
        """The rows ``trading.equity_page(run_id, after, before, limit)`` returns (without the tag)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append(((run_id, after, before, limit), future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            task = asyncio.ensure_future(self._run(pending[start:start + self._max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Request, asyncio.Future]]) -> None:
        self.batches += 1
        self.requests += len(batch)
        try:
            async with reading(self._ctx) as conn:
                rows = await repo.equity_pages(conn, [request for request, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), page_rows in zip(batch, rows, strict=True):
            if not future.done():
                future.set_result(page_rows)


def page_batcher(ctx: AppContext) -> PageBatcher:
    """The context's batcher (created on first use)."""
    batcher = ctx.services.page_batcher
    if batcher is None:
        batcher = ctx.services.page_batcher = PageBatcher(ctx)
    return batcher
