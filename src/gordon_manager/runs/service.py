"""Rules of the runs reads: positions from cursors, 404s, camelCase of stored JSON, page assembly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from gordon_manager.bots import service as bots_service
from gordon_manager.context import AppContext
from gordon_manager.db.readpool import reading
from gordon_manager.errors import BadCursor, NotFound, Unprocessable
from gordon_manager.http.casing import camelize
from gordon_manager.http.pagination import PageQuery, scope
from gordon_manager.http.values import iso_utc, plain_decimal_strings, utc_times
from gordon_manager.runs import bot_events, equity, repo
from gordon_manager.runs.batch import page_batcher
from gordon_manager.runs.schemas import (
    BotEventPage,
    BotEventRead,
    EquityQuery,
    EquitySummary,
    RoundtripPage,
    RoundtripRead,
    RunDetail,
    RunPage,
    RunRead,
)


def check_range(start: datetime | None, end: datetime | None) -> None:
    """``from`` must not be after ``to`` (422 naming both)."""
    if start is not None and end is not None and start > end:
        raise Unprocessable("`from` is after `to`.", extra={"errors": [
            {"field": "from", "message": "must not be after `to`", "type": "range"}]})


def time_position(position: dict, key: str) -> datetime:
    """A time keyset position (epoch microseconds) from a decoded cursor."""
    value = position.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadCursor("The cursor is not valid.")
    try:
        return equity.from_us(value)
    except OverflowError as exc:
        raise BadCursor("The cursor is not valid.") from exc


async def equity_page(ctx: AppContext, *, run_id: int, query: EquityQuery) -> bytes:
    """The JSON body of one keyset page of a run's equity points (``query.points`` unset)."""
    check_range(query.start, query.end)
    list_scope = f"equity|{run_id}|{query.end}"
    if query.cursor is None:
        # exclusive bound; no point is older than TIME_MIN, and a `from` in year 1 cannot step back 1 µs
        after = max(query.start, equity.TIME_MIN) - equity.ONE_US if query.start is not None else equity.TIME_MIN
    else:
        after = time_position(ctx.cursors.decode(list_scope, query.cursor), "t")
    before = query.end or equity.TIME_MAX
    rows = await page_batcher(ctx).fetch(run_id, after, before, query.limit)
    page = equity.page_from_rows(rows, after=after, before=before, limit=query.limit)
    if page is None:
        async with reading(ctx) as conn:
            if not await repo.run_exists(conn, run_id=run_id):
                raise NotFound(f"run {run_id} does not exist")
        return equity.page_body(np.empty(0, dtype=np.int64), [], None)
    stamps, columns = page
    next_cursor = ctx.cursors.encode(list_scope, {"t": int(stamps[-1])}) if len(stamps) == query.limit else None
    return equity.page_body(stamps, columns, next_cursor)


def _run_read(row: asyncpg.Record) -> dict[str, Any]:
    data = dict(row)
    data["params"] = camelize(data["params"] or {})
    return data


def run_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A run's stored execution config as the API shows it: camelCase, decimals in plain notation (backtests
    stored ``"1E-8"`` before; a bot run's config nests the bot's ``execution``)."""
    config = plain_decimal_strings(config or {})
    if isinstance(config.get("execution"), dict):
        config["execution"] = plain_decimal_strings(config["execution"])
    return camelize(config)


def run_detail_fields(row: Any) -> dict[str, Any]:
    """The RunDetail fields of a ``trading.runs`` row (equity aside): what GET /runs/{id} and /ws
    ``run_progress`` show of it."""
    data = _run_read(row)
    data["config"] = run_config(data.get("config"))
    data["stats"] = utc_times(camelize(data["stats"])) if data.get("stats") is not None else None
    return data


async def list_runs(conn: asyncpg.Connection, *, page: PageQuery, bot_id: int | None, kind: str | None,
                    status: str | None, strategy: str | None, symbol: str | None, start: datetime | None,
                    end: datetime | None) -> RunPage:
    """Runs newest first with the given filters."""
    check_range(start, end)
    list_scope = scope("runs", bot_id, kind, status, strategy, symbol, start, end)
    before_id = page.int_key(list_scope, "id")
    rows = await repo.list_runs(conn, limit=page.limit, bot_id=bot_id, kind=kind, status=status,
                                strategy=strategy, symbol=symbol, created_from=start, created_to=end,
                                before_id=before_id)
    return RunPage(items=[RunRead.model_validate(_run_read(r)) for r in rows],
                   next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))


async def get_run(conn: asyncpg.Connection, *, run_id: int) -> RunDetail:
    """One run with config, stats and its equity summary; NotFound when absent."""
    row = await repo.get_run(conn, run_id=run_id)
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    data = run_detail_fields(row)
    summary = await repo.equity_summary(conn, run_id=run_id)
    data["equity"] = EquitySummary.model_validate(dict(summary)) if summary["points"] else None
    return RunDetail.model_validate(data)


async def list_bot_runs(conn: asyncpg.Connection, *, bot_id: int, **kwargs: Any) -> RunPage:
    """The bot's runs (404 when the bot does not exist)."""
    await require_bot(conn, bot_id=bot_id)
    return await list_runs(conn, bot_id=bot_id, **kwargs)


async def require_bot(conn: asyncpg.Connection, *, bot_id: int) -> None:
    """NotFound unless the bot config was ever created (a deleted bot's history stays readable)."""
    await bots_service.require_known_bot(conn, bot_id=bot_id)


async def list_roundtrips(conn: asyncpg.Connection, *, page: PageQuery, run_id: int, side: str | None,
                          start: datetime | None, end: datetime | None) -> RoundtripPage:
    """A run's round trips in the order they were recorded (404 when the run does not exist)."""
    check_range(start, end)
    list_scope = scope("roundtrips", run_id, side, start, end)
    after_id = page.int_key(list_scope, "id")
    if after_id is None and not await repo.run_exists(conn, run_id=run_id):
        raise NotFound(f"run {run_id} does not exist")
    rows = await repo.list_roundtrips(conn, limit=page.limit, run_id=run_id, side=side, exit_from=start,
                                      exit_to=end, after_id=after_id)
    return RoundtripPage(items=[RoundtripRead.model_validate(dict(r)) for r in rows],
                         next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))


async def list_bot_events(conn: asyncpg.Connection, *, page: PageQuery, bot_id: int, kind: str | None,
                          level: str | None, start: datetime | None, end: datetime | None) -> BotEventPage:
    """A bot's events, newest first (404 when the bot does not exist)."""
    check_range(start, end)
    list_scope = scope("bot-events", bot_id, kind, level, start, end)
    before_id = page.int_key(list_scope, "id")
    await require_bot(conn, bot_id=bot_id)
    rows = await repo.list_bot_events(conn, limit=page.limit, bot_id=bot_id, kind=kind, level=level,
                                      at_from=start, at_to=end, before_id=before_id)
    return BotEventPage(items=[bot_event_read(r) for r in rows],
                        next_cursor=page.next_cursor(list_scope, rows, lambda r: {"id": r["id"]}))


# Bot events whose data carried the time as epoch milliseconds ("ts") before it was RFC 3339.
_TS_MS_KINDS = frozenset({"fill", "order_rejected"})


def bot_event_data(kind: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """A bot event's data as the API shows it: camelCase (its keys are ours), times UTC ``…Z``."""
    data = utc_times(camelize(data or {}))
    ts = data.get("ts")
    if kind in _TS_MS_KINDS and isinstance(ts, int) and not isinstance(ts, bool):
        try:
            data["ts"] = iso_utc(datetime.fromtimestamp(ts / 1000, UTC))
        except (OverflowError, OSError, ValueError):
            pass
    return data


def bot_event_read(row: Any) -> BotEventRead:
    """API model of a ``trading.bot_events`` row (GET /bots/{id}/events and /ws ``bot_events``): the variant
    of its kind (``runs.bot_events``)."""
    data = dict(row)
    data["data"] = bot_event_data(data["kind"], data.get("data"))
    return bot_events.read_event(data)


BOT_RUN_KINDS = ["paper", "shadow", "live"]  # a bot's equity: its trading runs (its backtests are apart)


async def bot_equity(ctx: AppContext, *, bot_id: int, kinds: list[str] | None, limit: int, cursor: str | None,
                     points: int | None, method: str, start: datetime | None, end: datetime | None) -> bytes:
    """The JSON body of GET /bots/{id}/equity: every run of the bot (of ``kinds``, default paper, shadow
    and live) over [start, end), keyset pages or downsampled to ``points``."""
    check_range(start, end)
    kinds = kinds or BOT_RUN_KINDS
    lo, hi = start or equity.TIME_MIN, end or equity.TIME_MAX
    list_scope = f"bot-equity|{bot_id}|{','.join(kinds)}|{end}"
    after_ts, after_run = lo, 0
    if cursor is not None:
        position = ctx.cursors.decode(list_scope, cursor)
        after_ts, raw_run = time_position(position, "t"), position.get("r")
        if not isinstance(raw_run, int) or isinstance(raw_run, bool):
            raise BadCursor("The cursor is not valid.")
        after_run = raw_run
    async with reading(ctx) as conn:
        await require_bot(conn, bot_id=bot_id)
        if points is not None:
            return await equity.bot_downsampled(conn, bot_id=bot_id, kinds=kinds, start=lo, end=hi,
                                                points=points, method=method)
        rows = await equity.repo.bot_equity_page(conn, bot_id=bot_id, after_ts=after_ts, after_run=after_run,
                                                 before=hi, kinds=kinds, limit=limit)
    next_cursor = None
    if len(rows) == limit:
        next_cursor = ctx.cursors.encode(list_scope, {"t": equity.to_us(rows[-1][1]), "r": rows[-1][0]})
    return equity.page_json(equity.bot_point_dicts(rows), next_cursor)
