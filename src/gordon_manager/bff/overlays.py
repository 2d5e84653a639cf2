"""Overlay decisions: the cursor-paginated list and the counts/rates summary over a window.

Summary formulas, per overlay over [from, to): ``total`` = its decisions; per decision
``share = count / total`` and ``perHour = count / ((to - from) in hours)``.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from gordon_manager.bff import repo
from gordon_manager.bff.schemas import (
    DecisionCount,
    OverlayDecisionPage,
    OverlayDecisionRead,
    OverlaySummary,
    OverlaySummaryItem,
)
from gordon_manager.http.pagination import PageQuery, scope
from gordon_manager.runs.service import check_range


async def decisions(conn: asyncpg.Connection, *, page: PageQuery, bot_id: int | None, overlay: str | None,
                    decision: str | None, start: datetime | None, end: datetime | None) -> OverlayDecisionPage:
    """Decisions newest first, filtered by bot, overlay, decision and time [from, to)."""
    check_range(start, end)
    list_scope = scope("overlay-decisions", bot_id, overlay, decision, start, end)
    before_id = page.int_key(list_scope, "id")
    rows = await repo.overlay_decisions(conn, limit=page.limit, bot_id=bot_id, overlay=overlay, decision=decision,
                                        at_from=start, at_to=end, before_id=before_id)
    # data: the overlay's own figures, keys as gordon-risk wrote them
    items = [OverlayDecisionRead.model_validate({**dict(r), "data": r["data"] or {}}) for r in rows]
    return OverlayDecisionPage(items=items, next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))


async def summary(conn: asyncpg.Connection, *, start: datetime, end: datetime, bot_id: int | None) -> OverlaySummary:
    """Counts and rates by overlay and decision over [start, end) (module docstring)."""
    check_range(start, end)
    rows = await repo.overlay_summary(conn, start=start, end=end, bot_id=bot_id)
    hours = max((end - start).total_seconds() / 3600.0, 1e-9)
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row["overlay"], []).append(row)
    overlays = []
    for name, group in grouped.items():
        total = sum(r["n"] for r in group)
        overlays.append(OverlaySummaryItem(overlay=name, total=total, decisions=[
            DecisionCount(decision=r["decision"], count=r["n"], share=r["n"] / total, per_hour=r["n"] / hours)
            for r in group]))
    return OverlaySummary(start=start, end=end, total=sum(o.total for o in overlays), overlays=overlays)
