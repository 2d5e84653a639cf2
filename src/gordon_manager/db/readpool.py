"""A read-only connection pool for console reads, without the per-release reset round trip.

asyncpg's pool sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` every time a
connection goes back, one extra round trip per request. Console reads never take locks, LISTEN
or SET anything, and their sessions are read-only (``default_transaction_read_only``), so that
reset protects nothing here and is skipped. The pool is opened on first use, with the service's
pool sizes, and closed at shutdown (it sits in ``ctx.services``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gordon_manager.context import AppContext
from gordon_manager.db.connect import _CONNECT_ERRORS, init_connection
from gordon_manager.db.urls import describe_host
from gordon_manager.errors import DatabaseUnavailable

# Failures of an established connection (server gone, socket closed) mean "database unavailable".
_QUERY_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                 asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CannotConnectNowError)


class ReadConnection(asyncpg.Connection):
    """A connection whose release to the pool sends nothing to the server."""

    def get_reset_query(self) -> str:
        return ""


class ReadPool:
    """The lazily opened read-only pool (``close()`` is called at shutdown)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        """The pool, opened on first call."""
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                settings = self._ctx.settings
                url = self._ctx.database_url
                try:
                    self._pool = await asyncpg.create_pool(
                        url, min_size=1, max_size=settings.db_pool_max, timeout=settings.db_connect_timeout_s,
                        init=init_connection, connection_class=ReadConnection, command_timeout=60,
                        server_settings={"application_name": "gordon-manager-reads", "TimeZone": "UTC",
                                         "default_transaction_read_only": "on"})
                except _CONNECT_ERRORS as exc:
                    raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {describe_host(url)}") from exc
        return self._pool

    async def close(self) -> None:
        """Close the pool if it was opened."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def read_pool(ctx: AppContext) -> asyncpg.Pool:
    """The context's read-only pool (created and registered on first use)."""
    holder = ctx.services.read_pool
    if holder is None:
        holder = ctx.services.read_pool = ReadPool(ctx)
    return await holder.get()


@asynccontextmanager
async def reading(ctx: AppContext) -> AsyncIterator[asyncpg.Connection]:
    """A read-only connection; connection-level failures become DatabaseUnavailable (503)."""
    pool = await read_pool(ctx)
    try:
        async with pool.acquire() as conn:
            yield conn
    except _QUERY_ERRORS as exc:
        raise DatabaseUnavailable(f"the database connection failed: {type(exc).__name__}") from exc
