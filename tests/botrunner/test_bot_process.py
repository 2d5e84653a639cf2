"""`gordon-manager bot` end to end: replay parity with the backtest, follow mode, pause/resume (entries
blocked, exits go; a replay holds its place), clean SIGTERM, /metrics, live intents on NATS, bad environment."""

from __future__ import annotations

import asyncio
import signal
import socket
import uuid
from datetime import timedelta
from decimal import Decimal

import asyncpg
import httpx

from gordon_manager.backtests.engine import run_backtest
from gordon_manager.botrunner import credentials
from gordon_manager.botrunner.bar_loop import BarLoop
from gordon_manager.db.connect import connect
from gordon_manager.execution import ExecutionConfig
from tests.botrunner.conftest import (
    START,
    TOKEN_KEY,
    create_bot_row,
    insert_klines,
    spawn_bot,
    synth,
    terminate,
)
from tests.botrunner.live_helpers import Bars
from tests.conftest import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbol() -> str:
    return "T" + uuid.uuid4().hex[:8].upper()


async def fetch(db, query: str, *args):
    conn = await connect(db.admin_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def run_row(db, bot_id: int):
    rows = await fetch(db, "SELECT * FROM trading.runs WHERE bot_id = $1 ORDER BY id DESC LIMIT 1", bot_id)
    return rows[0] if rows else None


async def test_replay_equals_the_backtest_on_the_same_bars(bdb):
    sym = symbol()
    bars = synth(900, seed=7)
    await insert_klines(bdb.admin_url, bars, symbol=sym)
    execution = {"taker_fee_bps": "10", "slippage_bps": "2"}
    bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20},
                                  labels={"replay.speed": "0"}, execution=execution)
    proc = spawn_bot(bdb, bot_id)
    try:
        async def done():
            run = await run_row(bdb, bot_id)
            if run is None:
                return False
            n = (await fetch(bdb, "SELECT count(*) AS n FROM trading.equity_points WHERE run_id = $1", run["id"]))[0]["n"]
            return n == len(bars)

        await wait_for(done, timeout=30)
    finally:
        assert terminate(proc) == 0, proc.stderr.read()
    expected = run_backtest(bars, "sma_crossover", {"fast": 5, "slow": 20}, ExecutionConfig(**execution))
    run = await run_row(bdb, bot_id)
    assert run["status"] == "stopped" and run["kind"] == "paper" and run["finished_at"] is not None
    equity = await fetch(bdb, "SELECT equity FROM trading.equity_points WHERE run_id = $1 ORDER BY ts", run["id"])
    assert [r["equity"] for r in equity] == expected.equity.tolist()  # bit-identical floats
    decisions = await fetch(bdb, "SELECT side, qty, price FROM trading.bot_decisions WHERE run_id = $1 ORDER BY bar_at",
                            run["id"])
    assert [(r["side"], r["qty"], r["price"]) for r in decisions] == \
        [(d.side.value, d.qty, d.price) for d in expected.decisions]
    trips = await fetch(bdb, "SELECT entry_price, exit_price, qty, net_pnl, fees FROM trading.roundtrips"
                             " WHERE run_id = $1 ORDER BY entry_at", run["id"])
    assert [(r["entry_price"], r["exit_price"], r["qty"], r["net_pnl"], r["fees"]) for r in trips] == \
        [(t.entry_price, t.exit_price, t.qty, t.net_pnl, t.fees) for t in expected.round_trips]
    assert len(trips) > 3
    kinds = [r["kind"] for r in await fetch(bdb, "SELECT kind FROM trading.bot_events WHERE run_id = $1", run["id"])]
    assert kinds[0] == "started" and kinds[-1] == "stopped" and "fill" in kinds


async def test_follow_mode_warms_up_trades_new_bars_and_stops_cleanly(bdb):
    sym = symbol()
    history = synth(200, seed=3)
    await insert_klines(bdb.admin_url, history, symbol=sym)
    bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20})
    port = free_port()
    proc = spawn_bot(bdb, bot_id, GORDON_BOT_METRICS_PORT=str(port))
    try:
        async def points():
            return await _point_count(bdb, bot_id)

        # warms up on the last `warmup` stored bars, not on the whole history, and trades none of them
        window = BarLoop("sma_crossover", {"fast": 5, "slow": 20}).window
        await wait_for(lambda: _eq(points, window), timeout=20)
        run = await run_row(bdb, bot_id)
        assert run["range_start"] == START + timedelta(minutes=200 - window)
        assert run["config"]["tradeFrom"] == (START + timedelta(minutes=199, milliseconds=1)).isoformat()
        # new bars arrive (the following minutes of the same path) and are traded
        more = synth(260, seed=3)
        await insert_klines(bdb.admin_url, more.slice(200, 260), symbol=sym)
        await wait_for(lambda: _eq(points, window + 60), timeout=20)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert f"gordon_bot_bars_total {window + 60}.0" in metrics and "gordon_bot_equity" in metrics
        assert "gordon_bot_decisions_total" in metrics and "gordon_bot_position" in metrics
        heartbeat = (await fetch(bdb, "SELECT last_heartbeat_at, metrics_port FROM trading.bot_status WHERE bot_id = $1",
                                 bot_id))[0]
        assert heartbeat["last_heartbeat_at"] is not None and heartbeat["metrics_port"] == port
    finally:
        code = terminate(proc)
    assert code == 0
    run = await run_row(bdb, bot_id)
    assert run["status"] == "stopped"
    assert await points() == window + 60, "nothing half-written"
    decisions = await fetch(bdb, "SELECT bar_at FROM trading.bot_decisions WHERE run_id = $1", run["id"])
    assert decisions and min(d["bar_at"] for d in decisions) >= START + timedelta(minutes=200)
    ledger = (await fetch(bdb, "SELECT qty, run_id FROM trading.bot_ledgers WHERE bot_id = $1", bot_id))[0]
    assert ledger["run_id"] == run["id"]


async def test_bars_from_hints_trade_exactly_as_queried_bars(bdb):
    """Two bots, two markets, the same bars (migration 0030, botrunner/hinted.py). A's new bars are written
    one per statement, so each NOTIFY carries its bar and A takes it without a query; B's two per
    statement, so B queries. A minute-long poll: only the hints move them. Same trading, bit for bit."""
    bars = synth(260, seed=11)
    params, execution = {"fast": 3, "slow": 8}, {"taker_fee_bps": "10", "slippage_bps": "2"}
    window = BarLoop("sma_crossover", params).window
    bots = {}
    for name in ("hinted", "queried"):
        sym = symbol()
        await insert_klines(bdb.admin_url, bars.slice(0, 200), symbol=sym)
        bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params=params, execution=execution)
        port = free_port()
        bots[name] = (sym, bot_id, port, spawn_bot(bdb, bot_id, GORDON_BOT_POLL_S="60",
                                                    GORDON_BOT_METRICS_PORT=str(port)))

    async def all_at(n: int) -> bool:
        return all([await _point_count(bdb, bot_id) == n for _s, bot_id, _p, _proc in bots.values()])

    try:
        await wait_for(lambda: all_at(window), timeout=20)
        for k in range(200, 260, 2):
            await insert_klines(bdb.admin_url, bars.slice(k, k + 1), symbol=bots["hinted"][0])
            await insert_klines(bdb.admin_url, bars.slice(k + 1, k + 2), symbol=bots["hinted"][0])
            await insert_klines(bdb.admin_url, bars.slice(k, k + 2), symbol=bots["queried"][0])
        await wait_for(lambda: all_at(window + 60), timeout=30)
        hinted = {name: httpx.get(f"http://127.0.0.1:{port}/metrics").text for name, (_s, _b, port, _p) in bots.items()}
        assert "gordon_bot_bars_hinted_total 60.0" in hinted["hinted"]
        assert "gordon_bot_bars_hinted_total 0.0" in hinted["queried"]
    finally:
        codes = {name: terminate(proc) for name, (_s, _b, _port, proc) in bots.items()}
    assert codes == {"hinted": 0, "queried": 0}
    traded = {}
    for name, (_s, bot_id, _p, _proc) in bots.items():
        run = await run_row(bdb, bot_id)
        traded[name] = [
            [tuple(r) for r in await fetch(bdb, "SELECT ts, equity FROM trading.equity_points WHERE run_id = $1"
                                                " ORDER BY ts", run["id"])],
            [tuple(r) for r in await fetch(bdb, "SELECT bar_at, side, qty, price FROM trading.bot_decisions"
                                                " WHERE run_id = $1 ORDER BY bar_at, id", run["id"])],
            [tuple(r) for r in await fetch(bdb, "SELECT entry_price, exit_price, qty, net_pnl FROM trading.roundtrips"
                                                " WHERE run_id = $1 ORDER BY entry_at", run["id"])]]
    assert traded["hinted"] == traded["queried"]
    assert len(traded["hinted"][0]) == window + 60 and len(traded["hinted"][1]) >= 2


async def declare(bdb, bot_id: int, proc, state: str) -> None:
    """Pause or resume as the manager does: declare the state, then signal the process.

    The bot is level-triggered on the declared state (its heartbeat re-reads it), so a bare signal
    against a declared 'running' would be undone at the next beat.
    """
    await fetch(bdb, "UPDATE trading.bot_configs SET desired_state = $2 WHERE id = $1 RETURNING id", bot_id, state)
    proc.send_signal(signal.SIGUSR1 if state == "paused" else signal.SIGUSR2)


async def test_pause_blocks_entries_but_exits_go_and_resume_trades_again(bdb):
    bars = Bars(bdb.admin_url)
    await bars.flat(6, 100.0)
    bot_id = await create_bot_row(bdb.admin_url, symbol=bars.symbol, strategy="donchian_breakout",
                                  params={"entry_period": 3, "exit_period": 3})
    proc = spawn_bot(bdb, bot_id)
    try:
        await wait_for(lambda: _trading_run(bdb, bot_id), timeout=20)
        await declare(bdb, bot_id, proc, "paused")
        await wait_for(lambda: _events(bdb, bot_id, "paused"), timeout=10)
        await bars.add(102.0)  # a breakout while paused: not an order, an event
        blocked = await wait_for(lambda: _events(bdb, bot_id, "entry_blocked"), timeout=10)
        assert blocked[0]["data"]["reason"] == "paused"
        await declare(bdb, bot_id, proc, "running")
        await wait_for(lambda: _events(bdb, bot_id, "resumed"), timeout=10)
        await bars.add(103.0, 103.0)  # the next breakout is bought (filled at the next open)
        await wait_for(lambda: _ledger_qty(bdb, bot_id), timeout=10)
        await declare(bdb, bot_id, proc, "paused")
        await wait_for(lambda: _count(bdb, bot_id, "paused", 2), timeout=10)
        await bars.add(98.0, 98.0)  # an exit while paused still goes
        await wait_for(lambda: _flat_after_trip(bdb, bot_id), timeout=10)
    finally:
        assert terminate(proc) == 0
    sides = [r["side"] for r in await fetch(bdb, "SELECT side FROM trading.bot_decisions WHERE bot_id = $1 ORDER BY id",
                                            bot_id)]
    assert sides == ["buy", "sell"]


async def test_a_paused_replay_continues_where_it_paused(bdb):
    sym = symbol()
    bars = synth(120, seed=21)
    await insert_klines(bdb.admin_url, bars, symbol=sym)
    bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20},
                                  labels={"replay.speed": "40"})
    proc = spawn_bot(bdb, bot_id)
    try:
        await wait_for(lambda: _points(bdb, bot_id, at_least=20), timeout=20)
        await declare(bdb, bot_id, proc, "paused")
        await wait_for(lambda: _events(bdb, bot_id, "paused"), timeout=10)
        await declare(bdb, bot_id, proc, "running")
        await wait_for(lambda: _points(bdb, bot_id, at_least=120), timeout=30)
    finally:
        assert terminate(proc) == 0
    run = await run_row(bdb, bot_id)
    stamps = [r["ts"] for r in await fetch(bdb, "SELECT ts FROM trading.equity_points WHERE run_id = $1 ORDER BY ts",
                                           run["id"])]
    assert len(stamps) == 120, "every bar replayed once: none skipped on resume"
    assert {b - a for a, b in zip(stamps, stamps[1:], strict=False)} == {timedelta(minutes=1)}


async def _trading_run(db, bot_id: int):
    run = await run_row(db, bot_id)
    return run if run is not None and run["config"].get("tradeFrom") else None


async def _events(db, bot_id: int, kind: str):
    return await fetch(db, "SELECT * FROM trading.bot_events WHERE bot_id = $1 AND kind = $2 ORDER BY id", bot_id, kind)


async def _count(db, bot_id: int, kind: str, n: int) -> bool:
    return len(await _events(db, bot_id, kind)) >= n


async def _ledger_qty(db, bot_id: int):
    rows = await fetch(db, "SELECT qty FROM trading.bot_ledgers WHERE bot_id = $1", bot_id)
    return rows[0]["qty"] if rows and rows[0]["qty"] > 0 else None


async def _flat_after_trip(db, bot_id: int) -> bool:
    trips = await fetch(db, "SELECT 1 FROM trading.roundtrips WHERE bot_id = $1", bot_id)
    return bool(trips) and await _ledger_qty(db, bot_id) is None


async def _point_count(db, bot_id: int) -> int:
    """Equity points of the bot's latest run (-1: no run yet)."""
    run = await run_row(db, bot_id)
    if run is None:
        return -1
    rows = await fetch(db, "SELECT count(*) AS n FROM trading.equity_points WHERE run_id = $1", run["id"])
    return rows[0]["n"]


async def _points(db, bot_id: int, *, at_least: int) -> bool:
    return await _point_count(db, bot_id) >= at_least


async def _eq(fn, value) -> bool:
    return await fn() == value


async def _shadow_run(bdb, sym: str, live_id: int, params: dict):
    """The first run of a shadow bot of ``live_id`` (its process is stopped once the run exists)."""
    shadow_id = await create_bot_row(bdb.admin_url, symbol=sym, params=params, mode="shadow", shadow_of=live_id)
    proc = spawn_bot(bdb, shadow_id)
    try:
        await wait_for(lambda: run_row(bdb, shadow_id), timeout=20)
        return await run_row(bdb, shadow_id)
    finally:
        assert terminate(proc) == 0


async def test_shadow_bot_starts_where_its_live_bot_started(bdb):
    sym = symbol()
    await insert_klines(bdb.admin_url, synth(100, seed=5), symbol=sym)
    live_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20})
    live = spawn_bot(bdb, live_id)
    try:
        await wait_for(lambda: run_row(bdb, live_id), timeout=20)
        live_run = await run_row(bdb, live_id)
        shadow_run = await _shadow_run(bdb, sym, live_id, {"fast": 5, "slow": 20})
        assert shadow_run["kind"] == "shadow"
        assert shadow_run["range_start"] == live_run["range_start"]
        # a candidate with a longer warm-up starts earlier, so it is warm at the live run's first traded bar
        slow_run = await _shadow_run(bdb, sym, live_id, {"fast": 5, "slow": 40})
        assert slow_run["config"]["tradeFrom"] == live_run["config"]["tradeFrom"]
        assert slow_run["range_start"] < live_run["range_start"]
        before = (await fetch(bdb, "SELECT count(*) AS n FROM market_data.klines WHERE symbol = $1 AND"
                                   " open_time >= $2 AND open_time < $3::text::timestamptz", sym,
                              slow_run["range_start"], live_run["config"]["tradeFrom"]))[0]["n"]
        assert before == BarLoop("sma_crossover", {"fast": 5, "slow": 40}).window - 1
    finally:
        assert terminate(live) == 0


async def test_live_mode_publishes_intents_for_new_bars_only(bdb, tmp_path):
    import nats

    from tests.events.helpers import NatsServer

    server = NatsServer(tmp_path / "js")
    server.start()
    try:
        sym = symbol()
        path = synth(400, seed=11)
        await insert_klines(bdb.admin_url, path.slice(0, 100), symbol=sym)
        bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 3, "slow": 8}, mode="live")
        client = await nats.connect(server.url)
        received: list[bytes] = []

        async def on_intent(msg) -> None:
            received.append(msg.data)

        await client.subscribe(f"orders.intents.{bot_id}", cb=on_intent)
        proc = spawn_bot(bdb, bot_id, GORDON_BUS_NATS_URL=server.url)
        try:
            await wait_for(lambda: run_row(bdb, bot_id), timeout=20)
            await asyncio.sleep(1.0)
            assert received == [], "history is never sent as live intents"
            await insert_klines(bdb.admin_url, path.slice(100, 400), symbol=sym)

            async def decided():
                run = await run_row(bdb, bot_id)
                rows = await fetch(bdb, "SELECT count(*) AS n FROM trading.bot_decisions WHERE run_id = $1", run["id"])
                return rows[0]["n"] > 0 and len(received) == rows[0]["n"]

            await wait_for(decided, timeout=20)
            import orjson

            intent = orjson.loads(received[0])
            assert intent["botId"] == bot_id and intent["side"] in ("buy", "sell")
            assert Decimal(intent["qty"]) > 0 and intent["clientOrderId"].startswith(f"gb{bot_id}-")
        finally:
            assert terminate(proc) == 0
            await client.close()
    finally:
        server.stop()


def test_missing_environment_is_a_clear_error():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GORDON_")}
    result = subprocess.run([sys.executable, "-m", "gordon_manager.cli", "bot"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "GORDON_BOT_ID is not set" in result.stderr


async def test_unknown_bot_exits_2(bdb):
    proc = spawn_bot(bdb, 987654)
    assert proc.wait(timeout=30) == 2


async def test_a_missing_or_wrong_token_exits_2_naming_it(bdb):
    """A bot proves which bot it is with GORDON_BOT_TOKEN (issue 14, item 8); without it nothing runs."""
    sym = symbol()
    bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20})
    other = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20})
    for token in ("", "not-the-token", credentials.bot_token(TOKEN_KEY, other)):  # the last: another bot's
        proc = spawn_bot(bdb, bot_id, GORDON_BOT_TOKEN=token)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 2 and "GORDON_BOT_TOKEN" in stderr
    assert await run_row(bdb, bot_id) is None  # not even a run


async def test_a_deleted_bot_with_a_valid_token_exits_2(bdb):
    bot_id = await create_bot_row(bdb.admin_url, symbol=symbol(), params={"fast": 5, "slow": 20})
    conn = await connect(bdb.admin_url)
    try:
        await conn.execute("UPDATE trading.bot_configs SET deleted_at = now() WHERE id = $1", bot_id)
    finally:
        await conn.close()
    proc = spawn_bot(bdb, bot_id)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "bot config not found" in stderr


async def test_pause_follows_the_declared_state_without_a_signal(bdb):
    """A pause signal lost at start-up is corrected from bot_configs at the next heartbeat."""
    sym = symbol()
    await insert_klines(bdb.admin_url, synth(60, seed=9), symbol=sym)
    bot_id = await create_bot_row(bdb.admin_url, symbol=sym, params={"fast": 5, "slow": 20})
    port = free_port()
    proc = spawn_bot(bdb, bot_id, GORDON_BOT_METRICS_PORT=str(port))
    try:
        await wait_for(lambda: _metrics_has(port, "gordon_bot_paused 0.0"), timeout=20)
        conn = await asyncpg.connect(bdb.admin_url)
        await conn.execute("UPDATE trading.bot_configs SET desired_state = 'paused' WHERE id = $1", bot_id)
        await wait_for(lambda: _metrics_has(port, "gordon_bot_paused 1.0"), timeout=12)
        await conn.execute("UPDATE trading.bot_configs SET desired_state = 'running' WHERE id = $1", bot_id)
        await conn.close()
        await wait_for(lambda: _metrics_has(port, "gordon_bot_paused 0.0"), timeout=12)
    finally:
        assert terminate(proc) == 0


def _metrics_has(port: int, text: str) -> bool:
    try:
        return text in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
