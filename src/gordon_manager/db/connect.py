"""Opening connections and pools, with library errors translated into ours."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import orjson

from gordon_manager.db.urls import describe_host
from gordon_manager.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

_CONNECT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# What a dedicated connection's work can raise when the server or the link fails (retry, reconnect).
DB_ERRORS = (*_CONNECT_ERRORS, asyncpg.InternalClientError, DatabaseUnavailable)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    """Decode json/jsonb with orjson on every connection."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=_json_dumps, decoder=orjson.loads, schema="pg_catalog")


async def connect(url: str, *, timeout: float = 5.0, init: bool = True,
                  application_name: str = "gordon-manager") -> asyncpg.Connection:
    """One connection, or DatabaseUnavailable naming the server."""
    try:
        conn = await asyncpg.connect(url, timeout=timeout, server_settings={"application_name": application_name})
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe_host(url)}: {_reason(exc)}") from exc
    if init:
        await init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int, max_size: int, timeout: float = 5.0) -> asyncpg.Pool:
    """The query pool, or DatabaseUnavailable naming the server."""
    try:
        return await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, init=init_connection,
            command_timeout=60, server_settings={"application_name": "gordon-manager"},
        )
    except _CONNECT_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe_host(url)}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
