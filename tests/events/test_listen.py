"""The process's one LISTEN connection (db/listen.py), against the real PostgreSQL.

Why one: PostgreSQL signals every listening backend of a database on every NOTIFY, whatever its
channel, and each one reads the queue in a transaction of its own. The manager's four NOTIFY readers
(the /ws listener, the hint and intent relays, the reconciler's wake-up) share one backend.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import asyncpg
import pytest

import gordon_manager
from gordon_manager.db.listen import APPLICATION_NAME, Listen
from gordon_manager.observability import metrics
from tests.conftest import Database, create_database
from tests.events.helpers import until

SRC = Path(gordon_manager.__file__).parent


class Recorder:
    """A subscriber that records what it is told."""

    def __init__(self, listen: Listen, name: str, channels: tuple[str, ...], *, fail_listening: int = 0) -> None:
        self.notes: list[tuple[str, str]] = []
        self.listening_pids: list[int] = []
        self.lost: list[str] = []
        self.fail_listening = fail_listening
        listen.subscribe(name, channels, self.notified, on_listening=self.on_listening, on_lost=self.lost.append)

    def notified(self, channel: str, payload: str) -> None:
        self.notes.append((channel, payload))

    async def on_listening(self, conn: asyncpg.Connection) -> None:
        assert await conn.fetchval("SELECT 1") == 1  # the connection is usable here (a replay reads on it)
        if self.fail_listening:
            self.fail_listening -= 1
            raise asyncpg.PostgresError("replay failed")
        self.listening_pids.append(conn.get_server_pid())


async def _listen_backends(admin: asyncpg.Connection, database: str) -> list[int]:
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                             database, APPLICATION_NAME)
    return [row["pid"] for row in rows]


def _only(admin: asyncpg.Connection, database: str, pid: int | None):
    """A predicate: the database's listening backends are exactly ``pid`` (none when None)."""
    async def check() -> bool:
        return await _listen_backends(admin, database) == ([] if pid is None else [pid])
    return check


@pytest.fixture
async def running(database: Database):
    """Start a Listen loop on the test database; stopped (and its connection closed) afterwards."""
    tasks: list[tuple[Listen, asyncio.Task]] = []

    def start(listen: Listen) -> Listen:
        tasks.append((listen, asyncio.create_task(listen.run())))
        return listen

    yield start
    for listen, task in tasks:
        listen.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_each_subscriber_gets_its_channels_on_one_backend(database: Database, admin, running):
    listen = Listen(url=database.manager_url, ping_interval_s=0.2)
    first = Recorder(listen, "first", ("gm_ch_a", "gm_ch_shared"))
    second = Recorder(listen, "second", ("gm_ch_b", "gm_ch_shared"))
    assert await listen.sync() and listen.connected
    running(listen)
    pid = listen.server_pid
    assert first.listening_pids == [pid] and second.listening_pids == [pid]
    assert await _listen_backends(admin, database.name) == [pid]

    for channel, payload in (("gm_ch_a", "1"), ("gm_ch_b", "2"), ("gm_ch_shared", "3"), ("gm_ch_none", "4")):
        await admin.execute("SELECT pg_notify($1, $2)", channel, payload)
    await until(lambda: len(first.notes) == 2 and len(second.notes) == 2)
    assert first.notes == [("gm_ch_a", "1"), ("gm_ch_shared", "3")]
    assert second.notes == [("gm_ch_b", "2"), ("gm_ch_shared", "3")]

    # A subscriber added later listens on the same connection, without a reconnect.
    third = Recorder(listen, "third", ("gm_ch_c",))
    await until(lambda: third.listening_pids == [pid])
    await admin.execute("SELECT pg_notify('gm_ch_c', 'late')")
    await until(lambda: third.notes == [("gm_ch_c", "late")])
    assert listen.connects == 1 and first.lost == [] and await _listen_backends(admin, database.name) == [pid]


async def test_a_dropped_connection_is_reported_then_every_subscriber_listens_again(database: Database, admin,
                                                                                      running):
    listen = Listen(url=database.manager_url, ping_interval_s=0.2)
    one = Recorder(listen, "one", ("gm_drop_a",))
    two = Recorder(listen, "two", ("gm_drop_b",))
    running(listen)
    await until(lambda: listen.connected)
    pid = listen.server_pid
    await admin.execute("SELECT pg_terminate_backend($1)", pid)
    await until(lambda: listen.connects == 2 and listen.connected)
    assert len(one.lost) == 1 and len(two.lost) == 1
    new_pid = listen.server_pid
    assert new_pid != pid and one.listening_pids == [pid, new_pid] and two.listening_pids == [pid, new_pid]
    await until(_only(admin, database.name, new_pid))  # the old backend is gone, not leaked
    await admin.execute("SELECT pg_notify('gm_drop_b', 'after')")
    await until(lambda: two.notes == [("gm_drop_b", "after")])


async def test_a_dead_connection_is_found_by_the_ping(database: Database, admin, running):
    listen = Listen(url=database.manager_url, ping_interval_s=0.2)
    sub = Recorder(listen, "pinged", ("gm_ping",))
    running(listen)
    await until(lambda: listen.connected)
    listen._conn.remove_termination_listener(listen._on_terminated)  # only the ping can notice now
    await admin.execute("SELECT pg_terminate_backend($1)", listen.server_pid)
    await until(lambda: listen.connects == 2, timeout=10)
    assert len(sub.lost) == 1 and len(sub.listening_pids) == 2


async def test_a_failing_subscriber_retries_the_whole_listen_with_backoff(database: Database, admin, running):
    listen = Listen(url=database.manager_url, ping_interval_s=0.25)
    steady = Recorder(listen, "steady", ("gm_fail_a",))
    flaky = Recorder(listen, "flaky", ("gm_fail_b",), fail_listening=2)
    assert not await listen.sync()
    assert not listen.connected and listen.error is not None and "replay failed" in listen.error
    assert listen.interval == pytest.approx(0.1) and steady.lost and flaky.lost
    await until(_only(admin, database.name, None))  # a failed start leaves no half-subscribed backend
    assert not await listen.sync()
    assert listen.interval == pytest.approx(0.2)  # backing off
    assert await listen.sync() and listen.connected and listen.interval == pytest.approx(0.25)
    running(listen)
    assert len(steady.listening_pids) == 3 and len(flaky.listening_pids) == 1
    await admin.execute("SELECT pg_notify('gm_fail_b', 'x')")
    await until(lambda: flaky.notes == [("gm_fail_b", "x")])


async def test_an_unreachable_server_backs_off_and_names_the_error():
    listen = Listen(url="postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=1.0, backoff_max_s=0.3)
    sub = Recorder(listen, "sub", ("gm_none",))
    intervals = []
    for _ in range(4):
        assert not await listen.sync()
        intervals.append(listen.interval)
    assert intervals == pytest.approx([0.1, 0.2, 0.3, 0.3])
    assert len(sub.lost) == 4 and "127.0.0.1" in listen.error and listen.server_pid is None


async def test_the_manager_reads_every_notify_channel_on_one_backend(pg_server_url, nats_server, start_manager):
    """Events listener, hint relay, intent relay and the reconciler's wake-up: one listening backend,
    through a reconnect too; a config NOTIFY wakes the reconciler through it."""
    db = await create_database(pg_server_url)  # own database: the reconciler runs here
    admin = await asyncpg.connect(db.admin_url)
    try:
        async with start_manager(db, bus_nats_url=nats_server.url, reconcile_enabled=True,
                                 reconcile_interval_s=3600) as manager:
            listen = manager.ctx.services.listen
            names = {s.name for s in listen._subscriptions}
            assert names == {"events-listener", "hint-relay", "intent-relay", "reconcile-listener"}
            await until(lambda: listen.connected)
            assert await _listen_backends(admin, db.name) == [listen.server_pid]

            await until(lambda: manager.ctx.services.leader.is_leader)  # a follower's reconciler does not pass
            woken = metrics.RECONCILE_TICKS.labels(trigger="notify")
            before = woken._value.get()

            async def notify_wakes() -> bool:  # again until a pass counts it (the leader's own wake-up may win one)
                await admin.execute("SELECT pg_notify('bot_config_changed', '{}')")
                return woken._value.get() > before

            await until(notify_wakes, interval=0.2)

            pid = listen.server_pid
            before = woken._value.get()
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await until(lambda: listen.connected and listen.server_pid != pid, timeout=15)
            await until(lambda: woken._value.get() > before)  # woken once LISTEN is back: changes may be missed
            await until(_only(admin, db.name, listen.server_pid))
    finally:
        await admin.close()


def test_nothing_else_in_the_manager_listens():
    """A new NOTIFY reader subscribes on the shared connection (db/listen.py), not on a connection of its own.
    Bots without NATS (botrunner) LISTEN in their own process: not the manager's backend count."""
    callers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "add_listener":
                callers.add(str(path.relative_to(SRC)))
    assert callers == {"db/listen.py", "botrunner/main.py"}
