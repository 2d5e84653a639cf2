"""SQL of the bots domain. Functions take a connection; they never commit (services own transactions)."""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = """c.id, c.name, c.strategy, c.symbol, c.interval, c.params, c.execution, c.mode, c.image,
    c.desired_state, c.version, c.spec_version, c.shadow_of, c.labels, c.created_by, c.created_at,
    c.updated_at, c.delete_requested_at, c.deleted_at, c.flatten_on_stop"""

# The bot's ledger and open orders as the bot last committed them (decimals as text: exact).
_POSITION = """(
SELECT jsonb_build_object(
         'mode', l.mode, 'symbol', l.symbol, 'qty', l.qty::text, 'avgEntryPrice', l.avg_entry_price::text,
         'cash', l.cash::text, 'feesPaid', l.fees_paid::text, 'realizedPnl', l.realized_pnl::text,
         'updatedAt', l.updated_at,
         'openOrders', coalesce((
             SELECT jsonb_agg(jsonb_build_object(
                      'clientOrderId', o.client_order_id, 'side', o.side, 'orderType', o.order_type,
                      'qty', o.qty::text, 'filledQty', o.filled_qty::text, 'price', o.price::text,
                      'reduceOnly', o.reduce_only, 'ocoGroup', o.oco_group, 'reason', o.reason,
                      'stopLoss', o.stop_loss::text, 'takeProfit', o.take_profit::text, 'status', o.status,
                      'createdAt', o.created_at) ORDER BY o.created_at, o.client_order_id)
               FROM trading.bot_orders o
              WHERE o.bot_id = c.id AND o.status IN ('new', 'accepted', 'partially_filled', 'cancelling')),
           '[]'::jsonb))
  FROM trading.bot_ledgers l WHERE l.bot_id = c.id) AS position"""

SELECT_BOT = f"""
SELECT {_COLUMNS}, to_jsonb(s.*) AS status, {_POSITION}
  FROM trading.bot_configs c LEFT JOIN trading.bot_status s ON s.bot_id = c.id
 WHERE c.id = $1 AND c.deleted_at IS NULL
"""

SELECT_BOT_FOR_UPDATE = """
SELECT * FROM trading.bot_configs WHERE id = $1 AND deleted_at IS NULL FOR UPDATE
"""

LIST_BOTS = f"""
SELECT {_COLUMNS}, to_jsonb(s.*) AS status, {_POSITION}
  FROM trading.bot_configs c LEFT JOIN trading.bot_status s ON s.bot_id = c.id
 WHERE c.deleted_at IS NULL
   AND ($1::bigint IS NULL OR c.id > $1)
   AND ($2::text IS NULL OR c.desired_state = $2)
   AND ($3::text IS NULL OR s.observed_state = $3)
   AND ($4::text IS NULL OR c.mode = $4)
 ORDER BY c.id
 LIMIT $5
"""

INSERT_BOT = """
INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, execution, mode, image,
                                 desired_state, shadow_of, labels, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *
"""

INSERT_STATUS = "INSERT INTO trading.bot_status (bot_id) VALUES ($1) ON CONFLICT (bot_id) DO NOTHING"

UPDATE_SPEC = """
UPDATE trading.bot_configs
   SET name = $3, strategy = $4, symbol = $5, interval = $6, params = $7, execution = $8, mode = $9,
       image = $10, labels = $11, version = version + 1,
       spec_version = spec_version + CASE WHEN $12 THEN 1 ELSE 0 END, updated_at = now()
 WHERE id = $1 AND version = $2 AND deleted_at IS NULL
RETURNING *
"""

UPDATE_DESIRED = """
UPDATE trading.bot_configs
   SET desired_state = $2, version = version + 1, updated_at = now(), flatten_on_stop = $4,
       delete_requested_at = CASE WHEN $3 THEN now() ELSE delete_requested_at END
 WHERE id = $1 AND deleted_at IS NULL
RETURNING *
"""

SELECT_LEDGER = """
SELECT l.mode, l.symbol, l.qty,
       (SELECT count(*) FROM trading.bot_orders o
         WHERE o.bot_id = l.bot_id AND o.status IN ('new', 'accepted', 'partially_filled', 'cancelling')) AS open_orders
  FROM trading.bot_ledgers l WHERE l.bot_id = $1
"""

CLEAR_QUARANTINE = """
UPDATE trading.bot_status
   SET quarantined = false, quarantine_reason = NULL, quarantined_at = NULL, failure_times = '{}',
       backoff_s = 0, next_retry_at = NULL, last_error = NULL, last_error_at = NULL,
       observed_state = CASE WHEN observed_state = 'quarantined' THEN 'stopped' ELSE observed_state END,
       generation = generation + 1, updated_at = now()
 WHERE bot_id = $1
RETURNING *
"""

SELECT_STATUS = "SELECT * FROM trading.bot_status WHERE bot_id = $1"

INSERT_AUDIT = """
INSERT INTO trading.bot_config_audit (bot_id, actor, action, version, before, after, diff, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

LIST_AUDIT = """
SELECT id, bot_id, actor, action, version, before, after, diff, request_id, at
  FROM trading.bot_config_audit
 WHERE bot_id = $1 AND ($2::bigint IS NULL OR id < $2)
 ORDER BY id DESC
 LIMIT $3
"""

# A bot is *known* once created (its soft-deleted history stays readable); it *exists* until deleted.
BOT_KNOWN = "SELECT 1 FROM trading.bot_configs WHERE id = $1"
BOT_EXISTS = "SELECT 1 FROM trading.bot_configs WHERE id = $1 AND deleted_at IS NULL"

CLAIM_IDEMPOTENCY_KEY = """
INSERT INTO trading.idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT (scope, key) DO NOTHING
RETURNING key
"""

SELECT_IDEMPOTENCY_KEY = "SELECT request_hash, status_code, response FROM trading.idempotency_keys WHERE scope = $1 AND key = $2"

STORE_IDEMPOTENT_RESPONSE = """
UPDATE trading.idempotency_keys SET status_code = $3, response = $4 WHERE scope = $1 AND key = $2
"""

INSERT_BOT_EVENT = """
INSERT INTO trading.bot_events (bot_id, kind, level, message, data) VALUES ($1, $2, $3, $4, $5)
"""


async def get_bot(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    """The bot with its status, or None."""
    return await conn.fetchrow(SELECT_BOT, bot_id)


async def lock_bot(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    """The config row, locked for this transaction."""
    return await conn.fetchrow(SELECT_BOT_FOR_UPDATE, bot_id)


async def list_bots(conn: asyncpg.Connection, *, after_id: int | None, desired_state: str | None,
                    observed_state: str | None, mode: str | None, limit: int) -> list[asyncpg.Record]:
    """A keyset page of bots ordered by id."""
    return await conn.fetch(LIST_BOTS, after_id, desired_state, observed_state, mode, limit)


async def insert_bot(conn: asyncpg.Connection, *, values: dict[str, Any], actor: str) -> asyncpg.Record:
    """Insert a config and its (pending) status row."""
    row = await conn.fetchrow(INSERT_BOT, values["name"], values["strategy"], values["symbol"], values["interval"],
                              values["params"], values["execution"], values["mode"], values["image"],
                              values["desired_state"], values["shadow_of"], values["labels"], actor)
    await conn.execute(INSERT_STATUS, row["id"])
    return row


async def update_spec(conn: asyncpg.Connection, *, bot_id: int, expected_version: int, values: dict[str, Any],
                      spec_changed: bool) -> asyncpg.Record | None:
    """Replace the spec when the version matches; None when it does not."""
    return await conn.fetchrow(UPDATE_SPEC, bot_id, expected_version, values["name"], values["strategy"],
                               values["symbol"], values["interval"], values["params"], values["execution"],
                               values["mode"], values["image"], values["labels"], spec_changed)


async def set_desired_state(conn: asyncpg.Connection, *, bot_id: int, desired_state: str,
                            delete: bool = False, flatten: bool = False) -> asyncpg.Record:
    """Set the desired state (and, for DELETE, the deletion request; for a stop, whether to flatten)."""
    return await conn.fetchrow(UPDATE_DESIRED, bot_id, desired_state, delete, flatten)


async def get_ledger(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    """What the bot's ledger holds: (mode, symbol, qty, open_orders), or None if it never traded."""
    return await conn.fetchrow(SELECT_LEDGER, bot_id)


async def get_status(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_STATUS, bot_id)


async def clear_quarantine(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(CLEAR_QUARANTINE, bot_id)


async def insert_audit(conn: asyncpg.Connection, *, bot_id: int, actor: str, action: str, version: int,
                       before: dict | None, after: dict | None, diff: dict, request_id: str | None) -> None:
    await conn.execute(INSERT_AUDIT, bot_id, actor, action, version, before, after, diff, request_id)


async def list_audit(conn: asyncpg.Connection, *, bot_id: int, before_id: int | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_AUDIT, bot_id, before_id, limit)


async def bot_known(conn: asyncpg.Connection, *, bot_id: int) -> bool:
    """The bot config was created (soft-deleted ones too: their history stays readable)."""
    return await conn.fetchval(BOT_KNOWN, bot_id) is not None


async def bot_exists(conn: asyncpg.Connection, *, bot_id: int) -> bool:
    """The bot config exists and is not deleted."""
    return await conn.fetchval(BOT_EXISTS, bot_id) is not None


async def claim_idempotency_key(conn: asyncpg.Connection, *, scope: str, key: str, request_hash: str) -> bool:
    """True when this request owns the key (waits for a concurrent owner to finish first)."""
    return await conn.fetchval(CLAIM_IDEMPOTENCY_KEY, scope, key, request_hash) is not None


async def get_idempotency_key(conn: asyncpg.Connection, *, scope: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_IDEMPOTENCY_KEY, scope, key)


async def store_idempotent_response(conn: asyncpg.Connection, *, scope: str, key: str, status_code: int,
                                    response: Any) -> None:
    await conn.execute(STORE_IDEMPOTENT_RESPONSE, scope, key, status_code, response)


async def insert_bot_event(conn: asyncpg.Connection, *, bot_id: int, kind: str, level: str, message: str,
                           data: dict) -> None:
    await conn.execute(INSERT_BOT_EVENT, bot_id, kind, level, message, data)
