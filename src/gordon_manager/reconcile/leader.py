"""Leader election: only the replica holding a Postgres advisory lock reconciles.

The lock lives on a dedicated, unpooled connection. The leader pings it every ``keepalive_s``;
it acts only while its last successful ping is younger than ``lease_s`` (a monotonic clock), so a
frozen leader that wakes up stops acting before it can act twice with another leader.
A candidate that finds the lock held looks at the holder's backend in ``pg_stat_activity``: when
its last query is older than ``takeover_s`` the holder is frozen or partitioned, and the candidate
terminates that backend (same role: allowed) and takes the lock. A dead leader's connection closes
and releases the lock at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from gordon_manager.db.connect import connect
from gordon_manager.loops import LoopService

logger = logging.getLogger(__name__)

LOCK_CLASS = 0x676F7264  # "gord"
LOCK_OBJECT = 2  # the reconciler (1 is kept for future singletons)

_HOLDER = """
SELECT a.pid, extract(epoch FROM now() - coalesce(a.query_start, a.backend_start))::float8 AS idle_s
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.granted
"""


class LeaderElector(LoopService):
    """Holds (or tries to take) the reconciler's advisory lock."""

    name = "leader"

    def __init__(self, *, url: str, keepalive_s: float = 1.0, lease_s: float = 5.0, takeover_s: float = 10.0,
                 connect_timeout_s: float = 5.0) -> None:
        super().__init__(interval=keepalive_s)
        self._url = url
        self._lease_s = lease_s
        self._takeover_s = takeover_s
        self._timeout = min(connect_timeout_s, lease_s / 2)
        self._conn: asyncpg.Connection | None = None
        self._holding = False
        self._last_ok = 0.0
        self.changed = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        """True only while the lock is held and the lease (last successful ping) is fresh."""
        return self._holding and time.monotonic() - self._last_ok < self._lease_s

    async def run_once(self) -> None:
        try:
            await asyncio.wait_for(self._step(), timeout=self._timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self._lose(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # DatabaseUnavailable from connect
            await self._lose(str(exc))

    async def _step(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self._url, timeout=self._timeout, init=False)
        if self._holding:
            await self._conn.fetchval("SELECT 1")
            self._last_ok = time.monotonic()
            return
        if await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, LOCK_OBJECT):
            self._holding = True
            self._last_ok = time.monotonic()
            logger.info("became reconciler leader")
            self.changed.set()
            return
        holder = await self._conn.fetchrow(_HOLDER, LOCK_CLASS, LOCK_OBJECT)
        if holder is not None and holder["idle_s"] > self._takeover_s:
            logger.warning("reconciler leader unresponsive: taking over",
                           extra={"holder_pid": holder["pid"], "idle_s": round(holder["idle_s"], 1)})
            await self._conn.fetchval("SELECT pg_terminate_backend($1)", holder["pid"])

    async def _lose(self, reason: str) -> None:
        if self._holding:
            logger.warning("lost reconciler leadership", extra={"reason": reason})
            self.changed.set()
        self._holding = False
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def teardown(self) -> None:
        """Release the lock by closing the session."""
        self._holding = False
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
