"""Data sources and pipeline: freshness (stale threshold applied), status, inventory, backfill jobs.

* A source is **stale** when it never updated, or ``now - last_update_at > threshold``, where the
  threshold is the row's ``stale_after_seconds`` or else ``GORDON_MANAGER_SOURCE_STALE_AFTER_S``.
* ``dataLagSeconds = now - last_data_at`` (how far behind the newest data point is);
  ``updateAgeSeconds = now - last_update_at`` (when the source last ran).
* Pipeline ``status``: ``empty`` without sources, ``degraded`` when a source is stale or a backfill
  job failed in the last 24 h, else ``ok``.
* Inventory (through the ``market_data.v_*_reader`` views only): per series first/last time and
  rows; for klines also the holes between consecutive bars (``gaps``), the bars missing inside
  [first, last] (``missingBars``) and the first missing bar (``firstGapAt``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from gordon_manager.bff import repo
from gordon_manager.bff.schemas import (
    BackfillCounts,
    BackfillJobPage,
    BackfillJobRead,
    DataInventory,
    DataStatus,
    InventoryItem,
    SourceHealth,
    SourceHealthRead,
    SourceStatus,
)
from gordon_manager.http.pagination import PageQuery, scope


def _age(now: datetime, at: datetime | None) -> float | None:
    return (now - at).total_seconds() if at is not None else None


def health_of(row: Any, *, now: datetime, default_stale_after_s: float) -> SourceHealth:
    """One source's freshness with its threshold applied (module docstring)."""
    own = row["stale_after_seconds"]
    threshold = float(own) if own is not None else default_stale_after_s
    age = _age(now, row["last_update_at"])
    return SourceHealth(source=row["source"], last_update_at=row["last_update_at"], last_data_at=row["last_data_at"],
                        age_seconds=age, stale_after_seconds=threshold,
                        threshold="source" if own is not None else "default",
                        stale=age is None or age > threshold,
                        detail=row["detail"] or {})  # the source's own keys, as it wrote them


async def source_health(conn: asyncpg.Connection, *, default_stale_after_s: float) -> SourceHealthRead:
    """Every source's freshness."""
    now = datetime.now(UTC)
    sources = [health_of(r, now=now, default_stale_after_s=default_stale_after_s) for r in await repo.sources(conn)]
    return SourceHealthRead(as_of=now, stale_count=sum(s.stale for s in sources), sources=sources)


async def status(conn: asyncpg.Connection, *, default_stale_after_s: float) -> DataStatus:
    """Per source last update and lag, backfill jobs by status, and the overall status."""
    now = datetime.now(UTC)
    sources = []
    for row in await repo.sources(conn):
        health = health_of(row, now=now, default_stale_after_s=default_stale_after_s)
        sources.append(SourceStatus(source=row["source"], last_update_at=row["last_update_at"],
                                    last_data_at=row["last_data_at"], update_age_seconds=health.age_seconds,
                                    data_lag_seconds=_age(now, row["last_data_at"]), stale=health.stale))
    rows = await repo.backfill_counts(conn)
    counts = {r["status"]: r["n"] for r in rows}
    failed_recent = sum(r["recent"] for r in rows)
    if not sources:
        overall = "empty"
    elif any(s.stale for s in sources) or failed_recent:
        overall = "degraded"
    else:
        overall = "ok"
    return DataStatus(as_of=now, status=overall, sources=sources, backfill=BackfillCounts(**counts),
                      failed_backfills_24h=failed_recent)


async def inventory(conn: asyncpg.Connection, *, dataset: str | None, symbol: str | None,
                    interval: str | None) -> DataInventory:
    """Market-data series extents, rows and (klines) gaps."""
    items: list[InventoryItem] = []
    if dataset in (None, "klines"):
        for r in await repo.klines_inventory(conn, symbol=symbol, interval=interval):
            items.append(InventoryItem(dataset="klines", **dict(r)))
    if dataset != "klines" and interval is None:
        for r in await repo.other_inventory(conn, symbol=symbol):
            if dataset in (None, r["dataset"]):
                items.append(InventoryItem(**dict(r)))
    return DataInventory(as_of=datetime.now(UTC), items=items)


async def backfill_jobs(conn: asyncpg.Connection, *, page: PageQuery, status: str | None, source: str | None,
                        symbol: str | None) -> BackfillJobPage:
    """Backfill jobs newest first."""
    list_scope = scope("backfill-jobs", status, source, symbol)
    before_id = page.int_key(list_scope, "id")
    rows = await repo.backfill_jobs(conn, limit=page.limit, status=status, source=source, symbol=symbol,
                                    before_id=before_id)
    return BackfillJobPage(items=[BackfillJobRead.model_validate(dict(r)) for r in rows],
                           next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))
