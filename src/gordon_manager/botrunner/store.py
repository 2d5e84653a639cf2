"""The bot runner's SQL: its config, its bars (through v_klines_reader), and what it writes.

The bot logs in as ``gordon_bot``: it reads its config and market data views, and writes its own
run, equity points, round trips, decisions, events and heartbeat. Each batch of bars is written in
one transaction, so a stop or crash never leaves a half-written bar behind.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from gordon_manager.botrunner.bar_loop import BlockedEntry
from gordon_manager.botrunner.book import ms_to_dt
from gordon_manager.execution import Bar, Decision, EquityPoint, Fill, Rejection, RoundTrip
from gordon_manager.http.values import iso_utc, plain_decimal
from gordon_manager.runs.repo import EQUITY_POINT_COLUMNS

SELECT_CONFIG = """
SELECT id, name, strategy, symbol, interval, params, execution, mode, desired_state, spec_version, shadow_of, labels
  FROM trading.bot_configs WHERE id = $1 AND deleted_at IS NULL
"""

# Closed bars only: a streaming pipeline may store the bar that is still forming.
SELECT_BARS = """
SELECT (extract(epoch FROM open_time) * 1000)::bigint AS ts, open, high, low, close, volume
  FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND open_time >= $3 AND close_time < now()
 ORDER BY open_time
 LIMIT $4
"""

# The open time of the bar `offset` bars before the newest closed one (where a live bot starts).
SELECT_START = """
SELECT open_time FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND close_time < now()
 ORDER BY open_time DESC OFFSET $3 LIMIT 1
"""

SELECT_FIRST = """
SELECT min(open_time) FROM market_data.v_klines_reader WHERE symbol = $1 AND interval = $2
"""

# The open time of the bar `offset` bars before `ts` (where a replay that continues warms up).
SELECT_BEFORE = """
SELECT open_time FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND open_time < $3
 ORDER BY open_time DESC OFFSET $4 LIMIT 1
"""

# A shadow bot replays its live bot's current run: same start, same first traded bar, same opening ledger.
SELECT_LIVE_RUN = """
SELECT id, range_start, config FROM trading.runs
 WHERE bot_id = $1 AND kind IN ('paper', 'live') AND status = 'running'
 ORDER BY id DESC LIMIT 1
"""

# A (re)starting bot is the only process of its bot id: whatever run it left 'running' is over.
ABANDON_RUNS = """
UPDATE trading.runs SET status = 'abandoned', finished_at = now(), updated_at = now(),
       error = 'the bot process ended without stopping its run (killed or lost)'
 WHERE bot_id = $1 AND kind IN ('paper', 'shadow', 'live') AND status = 'running'
RETURNING id
"""

SELECT_STOP_REQUEST = "SELECT desired_state, flatten_on_stop, version FROM trading.bot_configs WHERE id = $1"

INSERT_RUN = """
INSERT INTO trading.runs (kind, bot_id, status, strategy, params, symbol, interval, range_start, config,
                          started_at, heartbeat_at, created_by)
VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, now(), now(), 'bot')
RETURNING id
"""

FINISH_RUN = """
UPDATE trading.runs SET status = $2, error = $3, finished_at = now(), updated_at = now(), stats = $4
 WHERE id = $1
"""

SELECT_DESIRED = "SELECT desired_state FROM trading.bot_configs WHERE id = $1"

# No row: the leader declared the run abandoned (no heartbeat for too long); the bot must not go on.
HEARTBEAT_RUN = """
UPDATE trading.runs SET heartbeat_at = now(), range_end = coalesce($2, range_end) WHERE id = $1 AND status = 'running'
RETURNING id
"""
# The bot owns last_heartbeat_at; metrics_port is the reconciler's (it chose the port when it started the
# bot): a bot started by other means fills it in when none is recorded, and never overwrites it.
HEARTBEAT_STATUS = """
UPDATE trading.bot_status SET last_heartbeat_at = now(), metrics_port = coalesce(metrics_port, $2) WHERE bot_id = $1
"""

INSERT_EVENT = """
INSERT INTO trading.bot_events (bot_id, run_id, kind, level, message, data) VALUES ($1, $2, $3, $4, $5, $6)
"""

# A live bot writes one equity point per bar and one round trip per exit: an INSERT is one round trip,
# a COPY two; catch-up and replay batches (up to BATCH_BARS) go through COPY (``_write_rows``).
COPY_FROM = 16
ROUNDTRIP_COLUMNS = ["run_id", "bot_id", "symbol", "side", "entry_at", "exit_at", "entry_price", "exit_price", "qty",
                     "gross_pnl", "fees", "net_pnl", "duration_s", "exit_reason"]


def _insert(table: str, columns: list[str]) -> str:
    return (f"INSERT INTO trading.{table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, len(columns) + 1))})")


INSERT_EQUITY = _insert("equity_points", EQUITY_POINT_COLUMNS)
INSERT_ROUNDTRIP = _insert("roundtrips", ROUNDTRIP_COLUMNS)

INSERT_DECISION = """
INSERT INTO trading.bot_decisions (bot_id, run_id, bar_at, side, qty, order_type, price, reason, client_order_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""


async def load_config(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_CONFIG, bot_id)


async def fetch_bars(conn: asyncpg.Connection, *, symbol: str, interval: str, from_ts: datetime,
                     limit: int) -> list[Bar]:
    """Closed bars from ``from_ts`` on, oldest first."""
    rows = await conn.fetch(SELECT_BARS, symbol, interval, from_ts, limit)
    return [Bar(r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in rows]


async def start_of_window(conn: asyncpg.Connection, *, symbol: str, interval: str, bars_back: int) -> datetime | None:
    """Open time of the bar ``bars_back`` before the newest closed bar (or the oldest bar there is)."""
    at: datetime | None = await conn.fetchval(SELECT_START, symbol, interval, bars_back)
    return at or await conn.fetchval(SELECT_FIRST, symbol, interval)


async def first_bar_at(conn: asyncpg.Connection, *, symbol: str, interval: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(SELECT_FIRST, symbol, interval)
    return value


async def bar_before(conn: asyncpg.Connection, *, symbol: str, interval: str, ts: datetime,
                     bars_back: int) -> datetime | None:
    """Open time of the bar ``bars_back`` bars before ``ts`` (or the oldest bar there is)."""
    at: datetime | None = await conn.fetchval(SELECT_BEFORE, symbol, interval, ts, bars_back)
    return at or await conn.fetchval(SELECT_FIRST, symbol, interval)


async def live_run(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    """The live bot's current run (its start, first traded bar and opening ledger are in it)."""
    return await conn.fetchrow(SELECT_LIVE_RUN, bot_id)


async def abandon_runs(conn: asyncpg.Connection, *, bot_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(ABANDON_RUNS, bot_id)]


async def stop_request(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    """(desired_state, flatten_on_stop, version): what the manager asked when the bot is told to stop."""
    return await conn.fetchrow(SELECT_STOP_REQUEST, bot_id)


async def create_run(conn: asyncpg.Connection, *, cfg: asyncpg.Record, range_start: datetime | None,
                     extra: dict[str, Any]) -> int:
    config = {"execution": cfg["execution"], "specVersion": cfg["spec_version"], "mode": cfg["mode"],
              "shadowOf": cfg["shadow_of"], **extra}
    value: int = await conn.fetchval(INSERT_RUN, cfg["mode"], cfg["id"], cfg["strategy"], cfg["params"],
                                     cfg["symbol"], cfg["interval"], range_start, config)
    return value


async def finish_run(conn: asyncpg.Connection, *, run_id: int, status: str, error: str | None,
                     stats: dict[str, Any] | None) -> None:
    await conn.execute(FINISH_RUN, run_id, status, error, stats)


async def heartbeat(conn: asyncpg.Connection, *, bot_id: int, run_id: int, last_bar_at: datetime | None,
                    metrics_port: int | None) -> bool:
    """Beat; False when the run is no longer 'running' (declared abandoned)."""
    alive = await conn.fetchval(HEARTBEAT_RUN, run_id, last_bar_at)
    await conn.execute(HEARTBEAT_STATUS, bot_id, metrics_port)
    return alive is not None


async def desired_state(conn: asyncpg.Connection, *, bot_id: int) -> str | None:
    """The bot's desired state as the manager last declared it."""
    value: str | None = await conn.fetchval(SELECT_DESIRED, bot_id)
    return value


async def event(conn: asyncpg.Connection, *, bot_id: int, run_id: int | None, kind: str, message: str,
                level: str = "info", data: dict[str, Any] | None = None) -> None:
    await conn.execute(INSERT_EVENT, bot_id, run_id, kind, level, message, data or {})


async def write_batch(conn: asyncpg.Connection, *, bot_id: int, run_id: int, symbol: str,
                      events: list[tuple[Bar, list[Any], float, float]],
                      coid_of: Callable[[int], str | None] = lambda _id: None) -> None:
    """Persist the outcome of a batch of bars (call inside a transaction)."""
    equity, happened = [], []
    for bar, items, cash, qty in events:
        for item in items:
            if isinstance(item, EquityPoint):
                equity.append((run_id, ms_to_dt(item.ts), item.equity, cash, qty, bar.close))
            else:
                happened.append(item)
    await _write_rows(conn, "equity_points", EQUITY_POINT_COLUMNS, INSERT_EQUITY, equity)
    await write_events(conn, bot_id=bot_id, run_id=run_id, symbol=symbol, items=happened, coid_of=coid_of)


async def _write_rows(conn: asyncpg.Connection, table: str, columns: list[str], insert: str,
                      rows: list[tuple[Any, ...]]) -> None:
    """A batch over ``COPY_FROM`` rows by COPY; fewer (a live bar's point, an exit's round trip) by one INSERT."""
    if len(rows) > COPY_FROM:
        await conn.copy_records_to_table(table, schema_name="trading", records=rows, columns=columns)
    elif rows:
        await conn.executemany(insert, rows)


async def write_events(conn: asyncpg.Connection, *, bot_id: int, run_id: int, symbol: str, items: list[Any],
                       coid_of: Callable[[int], str | None] = lambda _id: None) -> None:
    """Decisions, round trips, fills, rejections and blocked entries (call inside a transaction)."""
    trips, decisions, notes = [], [], []
    for item in items:
        if isinstance(item, Decision):
            decisions.append((bot_id, run_id, ms_to_dt(item.ts), item.side.value, item.qty,
                              item.order_type.value, item.price, item.reason.value, coid_of(item.order_id)))
        elif isinstance(item, RoundTrip):
            trips.append((run_id, bot_id, symbol, "long", ms_to_dt(item.entry_ts), ms_to_dt(item.exit_ts),
                          item.entry_price, item.exit_price, item.qty, item.gross_pnl, item.fees, item.net_pnl,
                          item.duration_ms / 1000.0, item.exit_reason.value))
        elif isinstance(item, Fill):
            coid = coid_of(item.order_id)
            notes.append((bot_id, run_id, "fill", "info",
                          f"{item.side.value} {item.qty:f} @ {item.price:f} ({item.order_type.value})",
                          {"orderId": item.order_id, "clientOrderId": coid, "side": item.side.value,
                           "qty": plain_decimal(item.qty), "price": plain_decimal(item.price),
                           "fee": plain_decimal(item.fee), "ts": iso_utc(ms_to_dt(item.ts)), "reason": item.reason.value}))
        elif isinstance(item, Rejection):
            notes.append((bot_id, run_id, "order_rejected", "warning", item.reason,
                          {"orderId": item.order_id, "clientOrderId": coid_of(item.order_id),
                           "ts": iso_utc(ms_to_dt(item.ts))}))
        elif isinstance(item, BlockedEntry):
            notes.append((bot_id, run_id, "entry_blocked", "warning", f"entry blocked ({item.reason})",
                          {"reason": item.reason, "barAt": iso_utc(ms_to_dt(item.ts))}))
    await _write_rows(conn, "roundtrips", ROUNDTRIP_COLUMNS, INSERT_ROUNDTRIP, trips)
    if decisions:
        await conn.executemany(INSERT_DECISION, decisions)
    if notes:
        await conn.executemany(INSERT_EVENT, notes)
