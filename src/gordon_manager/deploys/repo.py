"""SQL of the deploys domain. Functions take a connection and never commit (services own transactions).

Leases use the database clock (``now()``), never a replica's: two managers with skewed clocks
still agree on whether a lease has lapsed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

ACTIVE = ("pending", "shadowing", "comparing", "swapping")
_ACTIVE_SQL = "('pending', 'shadowing', 'comparing', 'swapping')"
_SERVICE_ACTIVE_SQL = "('pending', 'starting', 'health_checking', 'swapping')"

INSERT_DEPLOY = """
INSERT INTO trading.bot_deploys (bot_id, state, from_version, from_spec_version, candidate, compare_window,
                                 match_threshold, lease_ttl_s, lease_expires_at, actor, min_actions, max_window)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $8), $9, $10, $11)
RETURNING *
"""

SET_CANDIDATE = "UPDATE trading.bot_deploys SET candidate_bot_id = $2, updated_at = now() WHERE id = $1 RETURNING *"

_EXPIRED = "lease_expires_at IS NOT NULL AND lease_expires_at <= now() AS lease_expired"
SELECT_DEPLOY = f"SELECT *, {_EXPIRED} FROM trading.bot_deploys WHERE id = $1"
SELECT_DEPLOY_FOR_UPDATE = f"SELECT *, {_EXPIRED} FROM trading.bot_deploys WHERE id = $1 FOR UPDATE"
SELECT_ACTIVE_FOR_BOT = f"SELECT * FROM trading.bot_deploys WHERE bot_id = $1 AND state IN {_ACTIVE_SQL}"
SELECT_ACTIVE_FOR_BOT_FOR_UPDATE = SELECT_ACTIVE_FOR_BOT + " FOR UPDATE"
SELECT_LATEST_FOR_BOT = "SELECT * FROM trading.bot_deploys WHERE bot_id = $1 ORDER BY id DESC LIMIT 1"

LIST_DEPLOYS = """
SELECT * FROM trading.bot_deploys
 WHERE bot_id = $1 AND ($2::bigint IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3
"""

# Every active deploy with whether its lease has lapsed, by the database clock.
ACTIVE_DEPLOYS = f"""
SELECT *, {_EXPIRED}
  FROM trading.bot_deploys WHERE state IN {_ACTIVE_SQL} ORDER BY id
"""

# Claim an unowned lease or renew our own while it is still valid; a lapsed lease is never renewed.
CLAIM_OR_RENEW = f"""
UPDATE trading.bot_deploys
   SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => lease_ttl_s)
 WHERE id = $1 AND state IN {_ACTIVE_SQL}
   AND (lease_owner IS NULL OR (lease_owner = $2 AND lease_expires_at > now()))
RETURNING *
"""

TRANSITION = """
UPDATE trading.bot_deploys SET state = $3, updated_at = now()
 WHERE id = $1 AND state = $2 AND lease_owner = $4
RETURNING *
"""

# The compare starts after $5: the bars before the live run's first traded bar are warm-up for both.
PIN_RUNS = """
UPDATE trading.bot_deploys
   SET state = 'comparing', live_run_id = $2, candidate_run_id = $3, compared_through = $5, compare_from = $5,
       updated_at = now()
 WHERE id = $1 AND state = 'shadowing' AND lease_owner = $4
RETURNING *
"""

RECORD_COMPARE = """
UPDATE trading.bot_deploys
   SET bars_compared = bars_compared + $2, matches = matches + $3, divergences = divergences + $4,
       compared_through = $5, idle_skipped = idle_skipped + $7, updated_at = now()
 WHERE id = $1 AND state = 'comparing' AND lease_owner = $6
RETURNING *
"""

SET_SWAPPING = "UPDATE trading.bot_deploys SET state = 'swapping', updated_at = now() WHERE id = $1 RETURNING *"

FINISH_DEPLOY = """
UPDATE trading.bot_deploys
   SET state = $2, reason = $3, to_version = coalesce($4, to_version), finished_at = now(), updated_at = now(),
       forced_by = coalesce($5, forced_by)
 WHERE id = $1
RETURNING *
"""

INSERT_DIVERGENCE = """
INSERT INTO trading.deploy_divergences (deploy_id, bar_at, live_decision, candidate_decision)
VALUES ($1, $2, $3, $4)
"""

DIVERGENCES_PAGE = """
SELECT id, bar_at, live_decision, candidate_decision, at FROM trading.deploy_divergences
 WHERE deploy_id = $1 AND ($2::bigint IS NULL OR id > $2)
 ORDER BY id
 LIMIT $3
"""

LATEST_DIVERGENCES = """
SELECT id, bar_at, live_decision, candidate_decision, at FROM trading.deploy_divergences
 WHERE deploy_id = $1 ORDER BY id DESC LIMIT $2
"""

# What the controller needs to know about both bots, in one round trip.
DEPLOY_CONTEXT = """
SELECT l.desired_state AS live_desired, l.spec_version AS live_spec_version,
       l.strategy AS live_strategy, l.params AS live_params, l.symbol AS live_symbol, l.interval AS live_interval,
       c.strategy AS cand_strategy, c.params AS cand_params,
       l.delete_requested_at IS NOT NULL OR l.deleted_at IS NOT NULL AS live_deleting,
       c.id IS NOT NULL AS cand_exists, c.mode AS cand_mode, c.desired_state AS cand_desired,
       c.delete_requested_at IS NOT NULL OR c.deleted_at IS NOT NULL AS cand_deleting,
       cs.observed_state AS cand_observed, coalesce(cs.quarantined, false) AS cand_quarantined,
       cs.last_error AS cand_last_error, cs.observed_version AS cand_observed_version,
       c.spec_version AS cand_spec_version,
       lr.id AS live_run_id, lr.status AS live_run_status, lr.range_start AS live_range_start,
       lr.config ->> 'tradeFrom' AS live_trade_from,
       cr.id AS cand_run_id, cr.status AS cand_run_status, cr.range_start AS cand_range_start
  FROM trading.bot_configs l
  LEFT JOIN trading.bot_configs c ON c.id = $2
  LEFT JOIN trading.bot_status cs ON cs.bot_id = $2
  LEFT JOIN LATERAL (SELECT id, status, range_start, config FROM trading.runs
                      WHERE bot_id = $1 AND kind IN ('paper', 'live') ORDER BY id DESC LIMIT 1) lr ON true
  LEFT JOIN LATERAL (SELECT id, status, range_start FROM trading.runs
                      WHERE bot_id = $2 AND kind = 'shadow' ORDER BY id DESC LIMIT 1) cr ON true
 WHERE l.id = $1
"""

# The compare tick: the next bars (after the keyset position, up to the newest bar of the candidate)
# that both runs processed, with each bot's decision on it (NULL side = no row = hold). The LATERAL
# subqueries with LIMIT cannot be flattened into hash joins, so every lookup is an index probe
# (PK (run_id, ts), UNIQUE (bot_id, run_id, bar_at)): a tick costs O(batch), never O(run length).
COMPARE_BATCH = """
WITH bars AS (
    SELECT l.ts, l.position_qty AS l_position, c.position_qty AS c_position
      FROM trading.equity_points l
     CROSS JOIN LATERAL (SELECT c.position_qty FROM trading.equity_points c
                          WHERE c.run_id = $4 AND c.ts = l.ts LIMIT 1) c
     WHERE l.run_id = $2 AND l.ts > coalesce($5::timestamptz, '-infinity')
       AND l.ts <= (SELECT max(m.ts) FROM trading.equity_points m WHERE m.run_id = $4)
     ORDER BY l.ts
     LIMIT $6
)
SELECT b.ts, b.l_position, b.c_position,
       ld.side AS l_side, ld.qty AS l_qty, ld.order_type AS l_type, ld.price AS l_price, ld.reason AS l_reason,
       cd.side AS c_side, cd.qty AS c_qty, cd.order_type AS c_type, cd.price AS c_price, cd.reason AS c_reason
  FROM bars b
  LEFT JOIN LATERAL (SELECT side, qty, order_type, price, reason FROM trading.bot_decisions
                      WHERE bot_id = $1 AND run_id = $2 AND bar_at = b.ts LIMIT 1) ld ON true
  LEFT JOIN LATERAL (SELECT side, qty, order_type, price, reason FROM trading.bot_decisions
                      WHERE bot_id = $3 AND run_id = $4 AND bar_at = b.ts LIMIT 1) cd ON true
 ORDER BY b.ts
"""

# The open time of the bar ``$4`` bars after ``$3`` (the first bar both strategies are warm at).
WARM_BAR = """
SELECT open_time FROM market_data.v_klines_reader
 WHERE symbol = $1 AND interval = $2 AND open_time >= $3
 ORDER BY open_time OFFSET $4 LIMIT 1
"""

# Outcomes over the compared window (compare_from, compared_through]: how far the two equity curves
# drift apart, and each side's round trips closed in it.
EQUITY_TRACKING = """
SELECT count(*) AS bars, max(abs(l.equity - c.equity)) AS max_abs_diff,
       max(abs(l.equity - c.equity) / nullif(abs(l.equity), 0)) AS max_rel_diff,
       (array_agg(c.equity - l.equity ORDER BY l.ts DESC))[1] AS last_diff
  FROM trading.equity_points l
  JOIN trading.equity_points c ON c.run_id = $2 AND c.ts = l.ts
 WHERE l.run_id = $1 AND l.ts > coalesce($3::timestamptz, '-infinity') AND l.ts <= $4
"""

# The first $4 round trips closed in the window, each row with the window's count and net PnL (the
# window aggregates are computed before the LIMIT): one round trip per side.
WINDOW_ROUNDTRIPS = """
SELECT entry_at, exit_at, entry_price, exit_price, qty, net_pnl, exit_reason,
       count(*) OVER () AS total_n, sum(net_pnl) OVER () AS total_net_pnl
  FROM trading.roundtrips
 WHERE run_id = $1 AND exit_at > coalesce($2::timestamptz, '-infinity') AND exit_at <= $3
 ORDER BY exit_at
 LIMIT $4
"""

# The swap: the candidate's runnable spec becomes the live bot's (name, mode, labels stay).
PROMOTE_SPEC = """
UPDATE trading.bot_configs
   SET strategy = $2, params = $3, execution = $4, image = $5, version = version + 1,
       spec_version = spec_version + 1, updated_at = now()
 WHERE id = $1 AND deleted_at IS NULL
RETURNING *
"""


async def insert_deploy(conn: asyncpg.Connection, *, bot_id: int, state: str, from_version: int,
                        from_spec_version: int, candidate: dict[str, Any], compare_window: int,
                        match_threshold: float, lease_ttl_s: float, actor: str, min_actions: int = 1,
                        max_window: int | None = None) -> asyncpg.Record:
    """Insert a deploy; asyncpg.UniqueViolationError when the bot already has an active one."""
    return await conn.fetchrow(INSERT_DEPLOY, bot_id, state, from_version, from_spec_version, candidate,
                               compare_window, match_threshold, lease_ttl_s, actor, min_actions, max_window)


async def set_candidate(conn: asyncpg.Connection, *, deploy_id: int, candidate_bot_id: int) -> asyncpg.Record:
    return await conn.fetchrow(SET_CANDIDATE, deploy_id, candidate_bot_id)


async def get_deploy(conn: asyncpg.Connection, *, deploy_id: int,
                     for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_DEPLOY_FOR_UPDATE if for_update else SELECT_DEPLOY, deploy_id)


async def active_for_bot(conn: asyncpg.Connection, *, bot_id: int,
                         for_update: bool = False) -> asyncpg.Record | None:
    """The bot's deploy in progress (locked when asked), or None."""
    return await conn.fetchrow(SELECT_ACTIVE_FOR_BOT_FOR_UPDATE if for_update else SELECT_ACTIVE_FOR_BOT, bot_id)


async def latest_for_bot(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_LATEST_FOR_BOT, bot_id)


async def list_deploys(conn: asyncpg.Connection, *, bot_id: int, before_id: int | None,
                       limit: int) -> list[asyncpg.Record]:
    """A keyset page of a bot's deploys, newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(LIST_DEPLOYS, bot_id, before_id, limit)
    return rows


async def active_deploys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(ACTIVE_DEPLOYS)
    return rows


async def claim_or_renew(conn: asyncpg.Connection, *, deploy_id: int, owner: str) -> asyncpg.Record | None:
    """The deploy with our fresh lease, or None when the lease is someone else's or has lapsed."""
    return await conn.fetchrow(CLAIM_OR_RENEW, deploy_id, owner)


async def transition(conn: asyncpg.Connection, *, deploy_id: int, from_state: str, to_state: str,
                     owner: str) -> asyncpg.Record | None:
    return await conn.fetchrow(TRANSITION, deploy_id, from_state, to_state, owner)


async def pin_runs(conn: asyncpg.Connection, *, deploy_id: int, live_run_id: int, candidate_run_id: int,
                   owner: str, start_after: datetime | None = None) -> asyncpg.Record | None:
    return await conn.fetchrow(PIN_RUNS, deploy_id, live_run_id, candidate_run_id, owner, start_after)


async def record_compare(conn: asyncpg.Connection, *, deploy_id: int, compared: int, matches: int,
                         divergences: int, through: datetime, owner: str, idle: int = 0) -> asyncpg.Record | None:
    return await conn.fetchrow(RECORD_COMPARE, deploy_id, compared, matches, divergences, through, owner, idle)


async def set_swapping(conn: asyncpg.Connection, *, deploy_id: int) -> asyncpg.Record:
    """Unconditional (the caller holds the row lock and checked the state)."""
    return await conn.fetchrow(SET_SWAPPING, deploy_id)


async def finish_deploy(conn: asyncpg.Connection, *, deploy_id: int, state: str, reason: str | None,
                        to_version: int | None = None, forced_by: str | None = None) -> asyncpg.Record:
    return await conn.fetchrow(FINISH_DEPLOY, deploy_id, state, reason, to_version, forced_by)


async def insert_divergences(conn: asyncpg.Connection, *, rows: list[tuple[int, datetime, dict[str, Any], dict[str, Any]]]) -> None:
    if rows:
        await conn.executemany(INSERT_DIVERGENCE, rows)


async def divergences_page(conn: asyncpg.Connection, *, deploy_id: int, after_id: int | None,
                           limit: int) -> list[asyncpg.Record]:
    """A keyset page of a deploy's divergences, in the order they were found."""
    rows: list[asyncpg.Record] = await conn.fetch(DIVERGENCES_PAGE, deploy_id, after_id, limit)
    return rows


async def latest_divergences(conn: asyncpg.Connection, *, deploy_id: int, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(LATEST_DIVERGENCES, deploy_id, limit)
    return rows


async def deploy_context(conn: asyncpg.Connection, *, bot_id: int,
                         candidate_bot_id: int | None) -> asyncpg.Record | None:
    return await conn.fetchrow(DEPLOY_CONTEXT, bot_id, candidate_bot_id)


async def compare_batch(conn: asyncpg.Connection, *, live_bot_id: int, live_run_id: int, candidate_bot_id: int,
                        candidate_run_id: int, after: datetime | None, limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(COMPARE_BATCH, live_bot_id, live_run_id, candidate_bot_id,
                                                  candidate_run_id, after, limit)
    return rows


async def warm_bar(conn: asyncpg.Connection, *, symbol: str, interval: str, start: datetime,
                   bars_after: int) -> datetime | None:
    value: datetime | None = await conn.fetchval(WARM_BAR, symbol, interval, start, bars_after)
    return value


async def equity_tracking(conn: asyncpg.Connection, *, live_run_id: int, candidate_run_id: int,
                          start: datetime | None, through: datetime) -> asyncpg.Record:
    return await conn.fetchrow(EQUITY_TRACKING, live_run_id, candidate_run_id, start, through)


async def window_roundtrips(conn: asyncpg.Connection, *, run_id: int, start: datetime | None, through: datetime,
                            limit: int) -> tuple[int, Any, list[dict[str, Any]]]:
    """(count, net PnL, the first ``limit`` round trips) of a run's round trips closed in the window."""
    rows = await conn.fetch(WINDOW_ROUNDTRIPS, run_id, start, through, limit)
    if not rows:
        return 0, 0, []
    items = [{k: v for k, v in r.items() if not k.startswith("total_")} for r in rows]
    return rows[0]["total_n"], rows[0]["total_net_pnl"], items


async def promote_spec(conn: asyncpg.Connection, *, bot_id: int, candidate: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(PROMOTE_SPEC, bot_id, candidate["strategy"], candidate["params"],
                               candidate["execution"], candidate["image"])


# -- service deploys ----------------------------------------------------------------------------

INSERT_SERVICE_DEPLOY = """
INSERT INTO trading.service_deploys (service, new_image, health_check, actor) VALUES ($1, $2, $3, $4)
RETURNING *
"""
SELECT_SERVICE_DEPLOY = "SELECT * FROM trading.service_deploys WHERE id = $1"
LIST_SERVICE_DEPLOYS = """
SELECT * FROM trading.service_deploys
 WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR service = $2)
 ORDER BY id DESC
 LIMIT $3
"""
# Active deploys, and finished ones whose new container still has to be removed.
SERVICE_WORK = f"""
SELECT *, health_deadline_at IS NOT NULL AND health_deadline_at <= now() AS health_expired
  FROM trading.service_deploys
 WHERE state IN {_SERVICE_ACTIVE_SQL}
    OR (state IN ('aborted', 'failed') AND new_container_id IS NOT NULL AND cleaned_up_at IS NULL)
 ORDER BY id
"""
SERVICE_DEPLOY_STATES = "SELECT id, state FROM trading.service_deploys WHERE id = ANY($1::bigint[])"
SERVICE_STARTING = """
UPDATE trading.service_deploys SET state = 'starting', old_container_id = $2, old_image = $3, updated_at = now()
 WHERE id = $1 AND state = 'pending'
RETURNING *
"""
SERVICE_RECORD_NEW = """
UPDATE trading.service_deploys SET new_container_id = $2, updated_at = now() WHERE id = $1 RETURNING *
"""
SERVICE_HEALTH_CHECKING = """
UPDATE trading.service_deploys
   SET state = 'health_checking', health_deadline_at = now() + make_interval(secs => $2), updated_at = now()
 WHERE id = $1 AND state = 'starting'
RETURNING *
"""
SERVICE_TRANSITION = """
UPDATE trading.service_deploys SET state = $3, updated_at = now() WHERE id = $1 AND state = $2 RETURNING *
"""
SERVICE_FINISH = """
UPDATE trading.service_deploys SET state = $3, reason = $4, finished_at = now(), updated_at = now()
 WHERE id = $1 AND state = ANY($2::text[])
RETURNING *
"""
SERVICE_CLEANED = "UPDATE trading.service_deploys SET cleaned_up_at = now(), updated_at = now() WHERE id = $1"


async def insert_service_deploy(conn: asyncpg.Connection, *, service: str, image: str, health_check: dict[str, Any],
                                actor: str) -> asyncpg.Record:
    """Insert a pending service deploy; UniqueViolationError when the service has an active one."""
    return await conn.fetchrow(INSERT_SERVICE_DEPLOY, service, image, health_check, actor)


async def get_service_deploy(conn: asyncpg.Connection, *, deploy_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_SERVICE_DEPLOY, deploy_id)


async def list_service_deploys(conn: asyncpg.Connection, *, before_id: int | None, service: str | None,
                               limit: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(LIST_SERVICE_DEPLOYS, before_id, service, limit)
    return rows


async def service_work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(SERVICE_WORK)
    return rows


async def service_deploy_states(conn: asyncpg.Connection, *, ids: list[int]) -> dict[int, str]:
    return {r["id"]: r["state"] for r in await conn.fetch(SERVICE_DEPLOY_STATES, ids)}


async def service_starting(conn: asyncpg.Connection, *, deploy_id: int, old_container_id: str | None,
                           old_image: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(SERVICE_STARTING, deploy_id, old_container_id, old_image)


async def service_record_new(conn: asyncpg.Connection, *, deploy_id: int, container_id: str) -> asyncpg.Record:
    return await conn.fetchrow(SERVICE_RECORD_NEW, deploy_id, container_id)


async def service_health_checking(conn: asyncpg.Connection, *, deploy_id: int,
                                  wait_s: float) -> asyncpg.Record | None:
    return await conn.fetchrow(SERVICE_HEALTH_CHECKING, deploy_id, wait_s)


async def service_transition(conn: asyncpg.Connection, *, deploy_id: int, from_state: str,
                             to_state: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SERVICE_TRANSITION, deploy_id, from_state, to_state)


async def service_finish(conn: asyncpg.Connection, *, deploy_id: int, from_states: tuple[str, ...], state: str,
                         reason: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(SERVICE_FINISH, deploy_id, list(from_states), state, reason)


async def service_cleaned(conn: asyncpg.Connection, *, deploy_id: int) -> None:
    await conn.execute(SERVICE_CLEANED, deploy_id)
