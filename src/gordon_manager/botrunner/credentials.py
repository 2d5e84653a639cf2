"""Each bot's own database credential: a token that binds its ``gordon_bot`` connection to its bot id.

Every bot logs in to PostgreSQL as the shared role ``gordon_bot``; what makes it *this* bot is a
secret only it was given. The manager derives each bot's token as HMAC-SHA256(key, bot id), the key
being generated once into its data dir (``bot-token-key``, mode 0600), so a restarted manager gives a
bot the same token. Before it starts a workload it writes the token's sha256 to
``trading.bot_credentials`` (``register``) and passes the token in ``GORDON_BOT_TOKEN``. The bot
calls ``trading.bot_login`` right after it connects (``login``); from then on row-level security
(migration 0019) lets that connection write only that bot's rows. The database keeps digests only.

Tests and benchmarks that start bots without a manager use the same functions with a key of their own.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import asyncpg

from gordon_manager.datadir import load_or_generate
from gordon_manager.errors import ConfigurationError

TOKEN_ENV = "GORDON_BOT_TOKEN"
KEY_FILE = "bot-token-key"

# Returns the digest registered before (one snapshot for both parts), so a caller knows when it changed.
UPSERT_CREDENTIAL = """
WITH previous AS (SELECT token_sha256 FROM trading.bot_credentials WHERE bot_id = $1),
     upsert AS (
         INSERT INTO trading.bot_credentials (bot_id, token_sha256) VALUES ($1, $2)
         ON CONFLICT (bot_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256, updated_at = now()
          WHERE trading.bot_credentials.token_sha256 <> EXCLUDED.token_sha256
         RETURNING 1)
SELECT (SELECT token_sha256 FROM previous)
"""

LOGIN = "SELECT trading.bot_login($1, $2)"


class BotLoginRefused(ConfigurationError):
    """The database refused the bot's token (none registered for the bot, or another one)."""


def load_key(data_dir: Path) -> bytes:
    """The manager's token key: read from ``data_dir`` or generated there once (0600)."""
    return load_or_generate(data_dir, KEY_FILE)[0].encode()


def bot_token(key: bytes, bot_id: int) -> str:
    """The token of ``bot_id`` under ``key`` (64 hex characters)."""
    return hmac.new(key, f"gordon-bot:{int(bot_id)}".encode(), hashlib.sha256).hexdigest()


def token_digest(token: str) -> bytes:
    """What the database stores and compares: sha256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode()).digest()


async def register(conn: asyncpg.Connection | asyncpg.Pool, *, bot_id: int, token: str) -> bool:
    """Record ``token`` as ``bot_id``'s (as gordon_manager or the owner; no write when unchanged).

    True when another token was registered before (the key changed: another data dir, another replica).
    """
    digest = token_digest(token)
    previous = await conn.fetchval(UPSERT_CREDENTIAL, bot_id, digest)
    return previous is not None and previous != digest


async def issue(conn: asyncpg.Connection | asyncpg.Pool, *, key: bytes, bot_id: int) -> str:
    """Derive ``bot_id``'s token, register it, and return it (what a bot's environment gets)."""
    token = bot_token(key, bot_id)
    await register(conn, bot_id=bot_id, token=token)
    return token


async def login(conn: asyncpg.Connection, *, bot_id: int, token: str) -> None:
    """Bind this ``gordon_bot`` connection to ``bot_id``; BotLoginRefused when the token is not its."""
    try:
        await conn.fetchval(LOGIN, bot_id, token)
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise BotLoginRefused(
            f"the database refused {TOKEN_ENV} for bot {bot_id}: not the token the manager registered for it") from exc
