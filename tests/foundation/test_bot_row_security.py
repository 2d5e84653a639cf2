"""The bot role writes only its own bot's rows (migration 0019, issue 14 item 8), proven logged in as
gordon_bot (bound to a bot with ``trading.bot_login``, or not bound) and as gordon_manager.

Every write below is the bot runner's own SQL (``botrunner/store.py``, and ``commit.py``'s one statement
with one table's row at a time), so what passes here is what a bot really does, and what is refused is
what another bot would try. COPY into equity_points and roundtrips (the backtest writer's path, which a
bot could try too) is refused the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from gordon_manager.botrunner import contract, credentials, ledger_store, store
from gordon_manager.botrunner.commit import Commit, write
from gordon_manager.db.connect import connect
from tests.conftest import Database

KEY = b"tests-foundation-token-key"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
RLS_TABLES = ["runs", "bot_decisions", "bot_events", "bot_status", "bot_orders", "bot_ledgers", "bot_fills",
              "order_intents"]
ROUNDTRIP_COLUMNS = ["run_id", "bot_id", "symbol", "side", "entry_at", "exit_at", "entry_price", "exit_price", "qty",
                     "gross_pnl", "fees", "net_pnl", "duration_s", "exit_reason"]
COPY_TABLES = ["equity_points", "roundtrips"]  # COPY targets: a statement trigger instead (COPY refuses RLS)


async def new_bot(admin: asyncpg.Connection, *, shadow_of: int | None = None) -> tuple[int, str, int]:
    """A bot as the API and the manager leave it before its start: (bot id, its token, a running run)."""
    bot_id = await admin.fetchval(
        "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, mode, image, shadow_of, created_by)"
        " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', $2, 'gordon-bot:1', $3, 'test') RETURNING id",
        f"rls-{uuid.uuid4().hex[:8]}", "shadow" if shadow_of else "paper", shadow_of)
    await admin.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
    token = await credentials.issue(admin, key=KEY, bot_id=bot_id)
    run_id = await admin.fetchval(
        "INSERT INTO trading.runs (kind, bot_id, status, strategy, symbol, interval, started_at, heartbeat_at)"
        " VALUES ('paper', $1, 'running', 'sma_crossover', 'BTCUSDT', '1m', now(), now()) RETURNING id", bot_id)
    return bot_id, token, run_id


@pytest.fixture
async def admin(database: Database):
    conn = await connect(database.admin_url)
    yield conn
    await conn.close()


@pytest.fixture
async def bots(admin):
    """Bots A and B, each with a running run, and an intent and an order of B's that A must not reach."""
    a = await new_bot(admin)
    b = await new_bot(admin)
    coid = contract.order_id(b[0], 1, 0)
    await commit_as(admin, b[0], b[2], Commit(intents=[(coid, "new", f'{{"botId": {b[0]}}}')],
                                              orders={coid: order_row(coid)}, ledger=ledger_row()))
    return a, b


@pytest.fixture
async def bot_conn(database: Database):
    """A gordon_bot connection, not bound yet."""
    conn = await connect(database.bot_url)
    assert await conn.fetchval("SELECT current_user") == "gordon_bot"
    yield conn
    await conn.close()


@pytest.fixture
async def as_a(bot_conn, bots):
    """gordon_bot bound to bot A."""
    (a_id, a_token, _), _ = bots
    await credentials.login(bot_conn, bot_id=a_id, token=a_token)
    return bot_conn


@pytest.fixture
async def as_manager(database: Database):
    conn = await connect(database.manager_url)
    assert await conn.fetchval("SELECT current_user") == "gordon_manager"
    yield conn
    await conn.close()


def commit_as(conn: asyncpg.Connection, bot_id: int, run_id: int | None, commit: Commit, *,
              subject_bot: int | None = None):
    """The bot's one write statement (``commit.write``), as ``conn``, under ``bot_id`` / ``run_id``."""
    return write(conn, commit, bot_id=bot_id, run_id=run_id, mode="paper", symbol="BTCUSDT",
                 subject=contract.intents_subject(subject_bot or bot_id))


def order_row(coid: str, status: str = "new") -> tuple:
    return (coid, "buy", "market", Decimal("0.1"), None, False, None, "signal", None, None, None, T0, status,
            Decimal(0), None)


def fill_row(coid: str, fill_id: str = "f1") -> tuple:
    return (fill_id, coid, "simulated", "buy", Decimal("0.1"), Decimal(100), Decimal(10), Decimal("0.01"), "taker",
            "signal", T0)


def ledger_row() -> tuple:
    return (Decimal("0.1"), Decimal(100), Decimal(990), Decimal("0.01"), Decimal(0), [], T0)


def intent_row(coid: str, *, payload_bot: int) -> tuple:
    return (coid, "new", f'{{"botId": {payload_bot}, "clientOrderId": "{coid}"}}')


def decision_row(at: datetime = T0) -> tuple:
    return (at, "buy", Decimal("0.1"), "market", None, "signal", None)


def event_args(bot_id: int, run_id: int | None) -> tuple:
    return (bot_id, run_id, "note", "info", "hello", {})


def equity_rows(at: datetime = T0) -> list[tuple]:
    return [(at, 1000.0, 1000.0, 0.0, 100.0), (at + timedelta(minutes=1), 1001.0, 1000.0, 0.0, 101.0)]


def trip_row() -> tuple:
    return (T0, T0 + timedelta(minutes=5), Decimal(100), Decimal(101), Decimal("0.1"), Decimal("0.1"),
            Decimal("0.02"), Decimal("0.08"), 300.0, "signal")


def one_row(write: str, bot_id: int, coid: str, fill_id: str = "fx", at: datetime = T0) -> Commit:
    """A commit holding one row of one table (``write`` names it), as the bot would write it."""
    return {"decision": lambda: Commit(decisions=[decision_row(at)]),
            "event": lambda: Commit(events=[("note", "info", "hello", "{}")]),
            "order": lambda: Commit(orders={coid: order_row(coid)}),
            "intent": lambda: Commit(intents=[intent_row(coid, payload_bot=bot_id)]),
            "fill": lambda: Commit(fills=[fill_row(coid, fill_id)]),
            "ledger": lambda: Commit(ledger=ledger_row()),
            "equity_insert": lambda: Commit(equity=equity_rows(at)),
            "roundtrip_insert": lambda: Commit(trips=[trip_row()])}[write]()


def equity(run_id: int, at: datetime = T0) -> list[tuple]:
    return [(run_id, at, 1000.0, 1000.0, 0.0, 100.0), (run_id, at + timedelta(minutes=1), 1001.0, 1000.0, 0.0, 101.0)]


def roundtrip(run_id: int, bot_id: int | None) -> list[tuple]:
    return [(run_id, bot_id, "BTCUSDT", "long", T0, T0 + timedelta(minutes=5), Decimal(100), Decimal(101),
             Decimal("0.1"), Decimal("0.1"), Decimal("0.02"), Decimal("0.08"), 300.0, "signal")]


async def copy_equity(conn, rows) -> None:
    await conn.copy_records_to_table("equity_points", schema_name="trading", records=rows,
                                     columns=["run_id", "ts", "equity", "cash", "position_qty", "price"])


async def copy_roundtrips(conn, rows) -> None:
    await conn.copy_records_to_table("roundtrips", schema_name="trading", records=rows, columns=ROUNDTRIP_COLUMNS)


# -- bound to its own bot: everything the runner writes ------------------------------------------------------
async def test_a_bound_bot_writes_all_of_its_own_rows(as_a, bots, admin):
    (a, _, a_run), _ = bots
    conn = as_a
    assert await conn.fetchval("SELECT trading.session_bot_id()") == a
    cfg = await store.load_config(conn, bot_id=a)
    async with conn.transaction():
        assert await store.abandon_runs(conn, bot_id=a) == [a_run]
        run = await store.create_run(conn, cfg=cfg, range_start=T0, extra={})
        await store.event(conn, bot_id=a, run_id=run, kind="started", message="started")
        coid = contract.order_id(a, 1, 0)
        every_table = Commit(equity=equity_rows(), decisions=[decision_row()[:6] + (coid,)], trips=[trip_row()],
                             orders={coid: order_row(coid)}, fills=[fill_row(coid)],
                             events=[("note", "info", "hello", "{}")], intents=[intent_row(coid, payload_bot=a)],
                             ledger=ledger_row())
        [intent] = await commit_as(conn, a, run, every_table)
        # the upsert paths (an order's new status, the ledger again), and the publish ack marked
        await commit_as(conn, a, run, Commit(orders={coid: order_row(coid, status="filled")}, ledger=ledger_row(),
                                             published=[intent.id]))
        assert await ledger_store.booked_fills(conn, bot_id=a, fill_ids=["f1", "f2"]) == {"f1"}
        await copy_equity(conn, equity(run, T0 + timedelta(days=1)))
        await copy_roundtrips(conn, roundtrip(run, a))
    assert [o.id for o in await ledger_store.unpublished(conn, bot_id=a)] == []
    assert await store.heartbeat(conn, bot_id=a, run_id=run, last_bar_at=T0, metrics_port=9100) == (True, "stopped")
    await store.finish_run(conn, run_id=run, status="stopped", error=None, stats={"bars": 2})
    recovered = await ledger_store.recover(conn, bot_id=a, initial_cash=Decimal(1000))
    assert recovered.found and recovered.qty == Decimal("0.1")
    # what the bot wrote is there, seen by the owner
    assert await admin.fetchval("SELECT status FROM trading.runs WHERE id = $1", run) == "stopped"
    assert await admin.fetchval("SELECT count(*) FROM trading.equity_points WHERE run_id = $1", run) == 4
    assert await admin.fetchval("SELECT count(*) FROM trading.roundtrips WHERE run_id = $1", run) == 2
    assert await admin.fetchval("SELECT metrics_port FROM trading.bot_status WHERE bot_id = $1", a) == 9100
    assert await admin.fetchval("SELECT status FROM trading.bot_orders WHERE client_order_id = $1", coid) == "filled"


# -- bound to A: nothing of B's ------------------------------------------------------------------------------
async def test_a_bot_cannot_update_another_bots_run(as_a, bots, admin):
    _, (b, _, b_run) = bots
    alive, _ = await store.heartbeat(as_a, bot_id=b, run_id=b_run, last_bar_at=T0, metrics_port=1234)
    assert alive is False  # 0 rows: B's run is invisible
    await store.finish_run(as_a, run_id=b_run, status="failed", error="by A", stats=None)
    assert await store.abandon_runs(as_a, bot_id=b) == []
    assert await as_a.execute("UPDATE trading.runs SET status = 'failed'") == "UPDATE 1"  # only its own run
    row = await admin.fetchrow("SELECT status, error FROM trading.runs WHERE id = $1", b_run)
    assert tuple(row) == ("running", None)
    # nor move its own run to B
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_a.execute("UPDATE trading.runs SET bot_id = $1 WHERE bot_id = trading.session_bot_id()", b)


async def test_a_bot_cannot_update_another_bots_heartbeat(as_a, bots, admin):
    _, (b, _, b_run) = bots
    alive, _ = await store.heartbeat(as_a, bot_id=b, run_id=b_run, last_bar_at=T0, metrics_port=1234)
    assert alive is False
    assert await admin.fetchval("SELECT metrics_port FROM trading.bot_status WHERE bot_id = $1", b) is None
    assert await admin.fetchval("SELECT last_heartbeat_at FROM trading.bot_status WHERE bot_id = $1", b) is None
    assert await as_a.fetchval("SELECT count(*) FROM trading.bot_status WHERE bot_id = $1", b) == 0


@pytest.mark.parametrize("write", ["run", "decision", "event", "order", "intent", "fill", "ledger", "equity",
                                   "equity_insert", "roundtrip", "roundtrip_insert"])
async def test_a_bot_cannot_insert_rows_for_another_bot(as_a, bots, write):
    (a, _, a_run), (b, _, b_run) = bots
    coid = contract.order_id(b, 2, 0)
    run = {"decision": b_run, "equity_insert": b_run, "roundtrip_insert": a_run}.get(write)  # as a bot would try
    statements = {
        "run": lambda: as_a.execute(store.INSERT_RUN, "paper", b, "s", {}, "BTCUSDT", "1m", None, {}),
        "event": lambda: as_a.execute(store.INSERT_EVENT, *event_args(b, None)),  # store.event's path
        "equity": lambda: copy_equity(as_a, equity(b_run)),
        "roundtrip": lambda: copy_roundtrips(as_a, roundtrip(a_run, b)),
    }
    statement = statements.get(write) or (lambda: commit_as(as_a, b, run, one_row(write, b, coid, "fb")))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await statement()
    if write == "event":  # and the commit's events
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await commit_as(as_a, b, None, one_row(write, b, coid))


@pytest.mark.parametrize("write", ["decision", "event", "order", "fill", "ledger", "equity", "equity_insert",
                                   "roundtrip", "roundtrip_insert"])
async def test_a_bot_cannot_attach_its_rows_to_another_bots_run(as_a, bots, write):
    (a, _, _), (_, _, b_run) = bots
    coid = contract.order_id(a, 3, 0)
    statements = {
        "event": lambda: as_a.execute(store.INSERT_EVENT, *event_args(a, b_run)),  # store.event's path
        "equity": lambda: copy_equity(as_a, equity(b_run, T0 + timedelta(days=1))),
        "roundtrip": lambda: copy_roundtrips(as_a, roundtrip(b_run, a)),
    }
    statement = statements.get(write) or (
        lambda: commit_as(as_a, a, b_run, one_row(write, a, coid, "fa", at=T0 + timedelta(days=2))))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await statement()
    if write == "event":  # and the commit's events
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await commit_as(as_a, a, b_run, one_row(write, a, coid))


@pytest.mark.parametrize("forged", ["client order id", "subject", "payload"])
async def test_a_bot_cannot_send_intents_under_another_bots_name(as_a, bots, forged):
    """Its own bot_id but B's client order id (B's JetStream de-duplication key), subject or bot id."""
    (a, _, _), (b, _, _) = bots
    row = {"client order id": intent_row(contract.order_id(b, 4, 0), payload_bot=a),
           "subject": intent_row(contract.order_id(a, 4, 0), payload_bot=a),
           "payload": intent_row(contract.order_id(a, 4, 1), payload_bot=b)}[forged]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await commit_as(as_a, a, None, Commit(intents=[row]), subject_bot=b if forged == "subject" else None)
    if forged == "client order id":
        coid = contract.order_id(b, 4, 0)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await commit_as(as_a, a, None, Commit(orders={coid: order_row(coid)}))


async def test_a_bot_sees_and_changes_none_of_another_bots_live_state(as_a, bots, admin):
    (a, _, _), (b, _, b_run) = bots
    assert await ledger_store.unpublished(as_a, bot_id=b) == []
    assert (await ledger_store.recover(as_a, bot_id=b, initial_cash=Decimal(5))).found is False
    b_intents = [r["id"] for r in await admin.fetch("SELECT id FROM trading.order_intents WHERE bot_id = $1", b)]
    await commit_as(as_a, a, None, Commit(published=b_intents))
    assert await admin.fetchval("SELECT count(*) FROM trading.order_intents WHERE bot_id = $1"
                                " AND published_at IS NOT NULL", b) == 0
    for table in ("bot_orders", "bot_ledgers", "order_intents", "bot_fills", "bot_status"):
        assert await as_a.fetchval(f"SELECT count(*) FROM trading.{table} WHERE bot_id <> $1", a) == 0
    for table in ("bot_orders", "bot_ledgers"):
        assert await as_a.execute(f"UPDATE trading.{table} SET updated_at = now() WHERE bot_id = $1", b) == "UPDATE 0"
    # B's order: an upsert of its client order id is refused, not applied to B's row
    coid = (await admin.fetchval("SELECT client_order_id FROM trading.bot_orders WHERE bot_id = $1", b))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await commit_as(as_a, b, b_run, Commit(orders={coid: order_row(coid, status="cancelled")}))
    assert await admin.fetchval("SELECT status FROM trading.bot_orders WHERE client_order_id = $1", coid) == "new"
    assert await as_a.fetchval("SELECT count(*) FROM trading.runs WHERE bot_id = $1", b) == 0


# -- binding: only with the bot's own token, never forged ---------------------------------------------------------
async def test_login_needs_the_bots_own_token(bot_conn, bots):
    (a, a_token, _), (b, b_token, _) = bots
    for bot_id, token in ((b, a_token), (a, b_token), (a, "nope"), (a, ""), (987654321, a_token)):
        with pytest.raises(credentials.BotLoginRefused, match=credentials.TOKEN_ENV):
            await credentials.login(bot_conn, bot_id=bot_id, token=token)
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        await bot_conn.fetchval("SELECT trading.bot_login($1, NULL)", a)
    assert await bot_conn.fetchval("SELECT trading.session_bot_id()") is None
    # a refused login leaves an existing binding as it was
    await credentials.login(bot_conn, bot_id=a, token=a_token)
    with pytest.raises(credentials.BotLoginRefused):
        await credentials.login(bot_conn, bot_id=b, token=a_token)
    assert await bot_conn.fetchval("SELECT trading.session_bot_id()") == a


@pytest.mark.parametrize("write", ["run", "decision", "event", "order", "intent", "fill", "ledger", "equity",
                                   "equity_insert", "roundtrip", "roundtrip_insert"])
async def test_nothing_is_written_before_login(bot_conn, bots, write):
    (a, _, a_run), _ = bots
    coid = contract.order_id(a, 5, 0)
    run = a_run if write in ("equity_insert", "roundtrip_insert") else None
    statements = {
        "run": lambda: bot_conn.execute(store.INSERT_RUN, "paper", a, "s", {}, "BTCUSDT", "1m", None, {}),
        "event": lambda: bot_conn.execute(store.INSERT_EVENT, *event_args(a, None)),  # store.event's path
        "equity": lambda: copy_equity(bot_conn, equity(a_run, T0 + timedelta(days=2))),
        "roundtrip": lambda: copy_roundtrips(bot_conn, roundtrip(a_run, a)),
    }
    statement = statements.get(write) or (
        lambda: commit_as(bot_conn, a, run, one_row(write, a, coid, "fn", at=T0 + timedelta(days=3))))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await statement()


async def test_an_unbound_session_updates_and_sees_nothing(bot_conn, bots, admin):
    (a, _, a_run), _ = bots
    alive, _ = await store.heartbeat(bot_conn, bot_id=a, run_id=a_run, last_bar_at=T0, metrics_port=1)
    assert alive is False
    assert await bot_conn.fetchval("SELECT count(*) FROM trading.runs") == 0
    assert await admin.fetchval("SELECT metrics_port FROM trading.bot_status WHERE bot_id = $1", a) is None


async def test_the_binding_cannot_be_forged(bot_conn, bots):
    """Not with a setting, not through the sequence that holds it, not by writing the tables behind it."""
    (a, a_token, _), (b, _, _) = bots
    for name in ("trading.bot_id", "gordon.bot_id", "app.bot_id"):
        await bot_conn.execute("SELECT set_config($1, $2, false)", name, str(b))
    assert await bot_conn.fetchval("SELECT trading.session_bot_id()") is None
    for statement in ("SELECT nextval('trading.bot_binding')", f"SELECT setval('trading.bot_binding', {b})",
                      "SELECT currval('trading.bot_binding')",
                      f"INSERT INTO trading.bot_sessions (pid, bot_id) VALUES (pg_backend_pid(), {b})",
                      f"UPDATE trading.bot_credentials SET token_sha256 = sha256('x'::bytea) WHERE bot_id = {b}",
                      f"INSERT INTO trading.bot_credentials (bot_id, token_sha256) VALUES ({b}, sha256('x'::bytea))",
                      "SELECT * FROM trading.bot_credentials", "SELECT * FROM trading.bot_sessions",
                      "ALTER SEQUENCE trading.bot_binding RESTART WITH 1"):
        with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.ObjectNotInPrerequisiteStateError)):
            await bot_conn.execute(statement)
    await credentials.login(bot_conn, bot_id=a, token=a_token)
    await bot_conn.execute("SELECT set_config('trading.bot_id', $1, false)", str(b))
    assert await bot_conn.fetchval("SELECT trading.session_bot_id()") == a
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await bot_conn.execute(f"SELECT setval('trading.bot_binding', {b})")


async def test_the_binding_belongs_to_one_backend(database: Database, bots, admin):
    """Another connection (a later backend, whatever its pid) starts unbound; DISCARD SEQUENCES unbinds."""
    (a, a_token, _), _ = bots
    first = await connect(database.bot_url)
    await credentials.login(first, bot_id=a, token=a_token)
    pid = await first.fetchval("SELECT pg_backend_pid()")
    assert await admin.fetchval("SELECT bot_id FROM trading.bot_sessions WHERE pid = $1", pid) == a
    second = await connect(database.bot_url)
    try:
        assert await second.fetchval("SELECT trading.session_bot_id()") is None
        await first.close()
        assert await second.fetchval("SELECT trading.session_bot_id()") is None
        await credentials.login(second, bot_id=a, token=a_token)
        assert await second.fetchval("SELECT trading.session_bot_id()") == a
        await second.execute("DISCARD SEQUENCES")  # (part of DISCARD ALL, a pool's reset)
        assert await second.fetchval("SELECT trading.session_bot_id()") is None
    finally:
        await second.close()


# -- shadow bots write under their own id and read their live bot's run --------------------------------------
async def test_a_shadow_bot_reads_its_live_bots_run_and_writes_only_its_own(database: Database, bots, admin):
    (a, _, a_run), (b, _, b_run) = bots
    s, s_token, s_run = await new_bot(admin, shadow_of=a)
    conn = await connect(database.bot_url)
    try:
        await credentials.login(conn, bot_id=s, token=s_token)
        live = await store.live_run(conn, bot_id=a)
        assert live is not None and live["id"] == a_run
        assert await store.live_run(conn, bot_id=b) is None  # not any other bot's
        alive, _ = await store.heartbeat(conn, bot_id=s, run_id=a_run, last_bar_at=T0, metrics_port=None)
        assert alive is False  # read, not written
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await commit_as(conn, s, a_run, Commit(decisions=[decision_row()]))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await commit_as(conn, s, a_run, Commit(equity=equity_rows(T0 + timedelta(days=3))))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await copy_equity(conn, equity(a_run, T0 + timedelta(days=3)))
        await commit_as(conn, s, s_run, Commit(decisions=[decision_row()], equity=equity_rows()))
        await copy_equity(conn, equity(s_run, T0 + timedelta(days=1)))
    finally:
        await conn.close()


# -- the manager: as before --------------------------------------------------------------------------------
async def test_the_manager_writes_and_reads_every_bots_rows_as_before(as_manager, bots, admin):
    (a, _, a_run), (b, _, b_run) = bots
    assert await as_manager.fetchval("SELECT count(*) FROM trading.runs WHERE id = ANY($1::bigint[])",
                                     [a_run, b_run]) == 2
    for table in ("bot_orders", "bot_ledgers", "order_intents"):
        assert await as_manager.fetchval(f"SELECT count(*) FROM trading.{table} WHERE bot_id = $1", b) == 1
    async with as_manager.transaction():
        run = await as_manager.fetchval(
            "INSERT INTO trading.runs (kind, strategy, symbol, interval) VALUES ('backtest', 's', 'BTCUSDT', '1m')"
            " RETURNING id")
        assert await as_manager.execute("UPDATE trading.runs SET status = 'abandoned' WHERE id = ANY($1::bigint[])",
                                        [a_run, b_run]) == "UPDATE 2"
        await copy_equity(as_manager, equity(run))  # the backtest writer's COPY
        await copy_roundtrips(as_manager, roundtrip(run, None))
        await as_manager.execute(store.INSERT_EVENT, *event_args(b, b_run))
        await as_manager.execute("INSERT INTO trading.bot_status (bot_id, observed_state) VALUES ($1, 'running')"
                                 " ON CONFLICT (bot_id) DO UPDATE SET observed_state = EXCLUDED.observed_state", a)
        await credentials.register(as_manager, bot_id=a, token=credentials.bot_token(b"another key", a))
    # the manager registers tokens, but cannot log in as a bot nor set a binding
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.fetchval("SELECT trading.bot_login($1, 'x')", a)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_manager.fetchval("SELECT setval('trading.bot_binding', 1)")


# -- the schema: every table the bot role may write is covered ---------------------------------------------------
async def test_every_table_the_bot_role_writes_is_restricted_to_its_bot(admin):
    writable = {r["t"] for r in await admin.fetch(
        "SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'trading' AND c.relkind = 'r' AND (has_table_privilege('gordon_bot', c.oid, 'INSERT')"
        "   OR has_table_privilege('gordon_bot', c.oid, 'UPDATE') OR has_table_privilege('gordon_bot', c.oid, 'DELETE')"
        "   OR has_any_column_privilege('gordon_bot', c.oid, 'INSERT')"
        "   OR has_any_column_privilege('gordon_bot', c.oid, 'UPDATE'))")}
    assert writable == set(RLS_TABLES) | set(COPY_TABLES)
    restricted = {r["t"] for r in await admin.fetch(
        "SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'trading' AND c.relrowsecurity AND EXISTS (SELECT 1 FROM pg_policy p"
        "   WHERE p.polrelid = c.oid AND NOT p.polpermissive AND 'gordon_bot'::regrole::oid = ANY (p.polroles))")}
    assert restricted == set(RLS_TABLES)
    checked = {r["t"] for r in await admin.fetch(
        "SELECT c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
        " WHERE g.tgname = 'bot_rows_check'")}
    assert checked == set(COPY_TABLES)
