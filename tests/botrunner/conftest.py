"""Bot-runner fixtures: a private database with synthetic klines, and a way to run `gordon-manager bot`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from gordon_manager.botrunner import credentials
from gordon_manager.db.connect import connect
from gordon_manager.marketdata import generate_klines
from tests.conftest import create_database
from tests.events.helpers import NatsServer

START = datetime(2024, 1, 1, tzinfo=UTC)
# The token key of the bots these tests start themselves (the manager keeps its own in its data dir).
TOKEN_KEY = b"tests-botrunner-token-key"


@pytest.fixture(scope="module")
async def bdb(pg_server_url):
    return await create_database(pg_server_url)


@pytest.fixture
def nats_server(tmp_path):
    """A real nats-server with JetStream, of this test only."""
    server = NatsServer(tmp_path / "js")
    server.start()
    yield server
    server.stop()


async def insert_klines(admin_url: str, bars, *, symbol: str, interval: str = "1m") -> None:
    """Store bars as the data pipeline would (admin connection; the bot reads through the view)."""
    step = timedelta(minutes=1)
    records = [(symbol, interval, datetime.fromtimestamp(int(t) / 1000, UTC),
                datetime.fromtimestamp(int(t) / 1000, UTC) + step - timedelta(milliseconds=1),
                float(o), float(h), float(lo), float(c), float(v))
               for t, o, h, lo, c, v in zip(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                                            strict=True)]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.copy_records_to_table("klines", schema_name="market_data", records=records,
                                         columns=["symbol", "interval", "open_time", "close_time", "open", "high",
                                                  "low", "close", "volume"])
    finally:
        await conn.close()


def synth(n: int, seed: int, start: datetime = START):
    return generate_klines(n_bars=n, seed=seed, interval="1m", start_ts=int(start.timestamp() * 1000))


async def create_bot_row(admin_url: str, *, symbol: str, params: dict, labels: dict | None = None,
                         mode: str = "paper", execution: dict | None = None, shadow_of: int | None = None,
                         strategy: str = "sma_crossover") -> int:
    conn = await connect(admin_url)
    try:
        bot_id = await conn.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, params, execution, mode, image,"
            " desired_state, labels, shadow_of, created_by) VALUES ($1, $2, $3, '1m', $4, $5, $6, 'gordon-bot:1',"
            " 'running', $7, $8, 'test') RETURNING id",
            f"b-{uuid.uuid4().hex[:8]}", strategy, symbol, params, execution or {}, mode, labels or {}, shadow_of)
        await conn.execute("INSERT INTO trading.bot_status (bot_id) VALUES ($1)", bot_id)
        await credentials.issue(conn, key=TOKEN_KEY, bot_id=bot_id)  # as the manager does before a start
        return bot_id
    finally:
        await conn.close()


def spawn_bot(db, bot_id: int, **env: str) -> subprocess.Popen:
    """`gordon-manager bot` as a real child process, logged in as gordon_bot with its own token."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("GORDON_")}
    full.update({"GORDON_BOT_ID": str(bot_id), "GORDON_DATABASE_URL": db.bot_url, "GORDON_BOT_POLL_S": "0.1",
                 "GORDON_MANAGER_LOG_LEVEL": "WARNING",
                 credentials.TOKEN_ENV: credentials.bot_token(TOKEN_KEY, bot_id)})
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "gordon_manager.cli", "bot"], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def terminate(proc: subprocess.Popen, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode
