"""The bot runner's SQL: its config, its bars (through v_klines_reader), its run and heartbeat.

The bot logs in as ``gordon_bot``: it reads its config and market data views, and writes its own
run, events and heartbeat here; what a batch of bars or an executor report changed (equity points,
round trips, decisions, orders, fills, intents, ledger, events) is one statement of ``commit``, so
a stop or crash never leaves a half-written bar behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from gordon_manager.execution import Bar

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

# One round trip every HEARTBEAT_S: the run's beat (no row: the leader declared the run abandoned, no
# heartbeat for too long, and the bot must not go on), the bot's status beat, and its declared state.
# The bot owns last_heartbeat_at; metrics_port is the reconciler's (it chose the port when it started the
# bot): a bot started by other means fills it in when none is recorded, and never overwrites it.
HEARTBEAT = """
WITH beat AS (
    UPDATE trading.runs SET heartbeat_at = now(), range_end = coalesce($3, range_end)
     WHERE id = $2 AND status = 'running'
    RETURNING id
), status AS (
    UPDATE trading.bot_status SET last_heartbeat_at = now(), metrics_port = coalesce(metrics_port, $4)
     WHERE bot_id = $1
)
SELECT EXISTS (SELECT 1 FROM beat) AS alive,
       (SELECT desired_state FROM trading.bot_configs WHERE id = $1) AS desired_state
"""

INSERT_EVENT = """
INSERT INTO trading.bot_events (bot_id, run_id, kind, level, message, data) VALUES ($1, $2, $3, $4, $5, $6)
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
                    metrics_port: int | None) -> tuple[bool, str | None]:
    """Beat; (False, _) when the run is no longer 'running' (declared abandoned); and the declared state."""
    row = await conn.fetchrow(HEARTBEAT, bot_id, run_id, last_bar_at, metrics_port)
    return row["alive"], row["desired_state"]


async def event(conn: asyncpg.Connection, *, bot_id: int, run_id: int | None, kind: str, message: str,
                level: str = "info", data: dict[str, Any] | None = None) -> None:
    await conn.execute(INSERT_EVENT, bot_id, run_id, kind, level, message, data or {})
