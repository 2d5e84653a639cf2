"""Each bot's database token (issue 14, item 8): the manager derives it from the key in its data dir,
passes it in the bot's environment and registers its digest before the workload starts."""

from __future__ import annotations

import hashlib
import stat
import uuid

import asyncpg
import pytest

from gordon_manager.botrunner import credentials
from gordon_manager.db.connect import connect, create_pool
from gordon_manager.reconcile.start import CredentialedRuntime, make_spec_builder
from gordon_manager.runtimes.base import Observed, RuntimeUnavailable, WorkloadSpec
from tests.conftest import make_settings


def row(bot_id: int) -> dict:
    return {"id": bot_id, "spec_version": 3, "desired_state": "running", "metrics_port": 9999, "image": "gordon-bot:1"}


def test_each_bot_gets_its_own_token_and_a_restart_the_same(rdb, data_dir):
    settings = make_settings(rdb, data_dir)
    build = make_spec_builder(settings, "process")
    one, two = build(row(1)).env[credentials.TOKEN_ENV], build(row(2)).env[credentials.TOKEN_ENV]
    assert len(one) == 64 and one != two
    assert make_spec_builder(settings, "docker")(row(1)).env[credentials.TOKEN_ENV] == one  # a restarted manager
    key_file = data_dir / credentials.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert credentials.bot_token(credentials.load_key(data_dir), 1) == one
    # another data dir (another key): other tokens
    other = data_dir.parent / "other"
    assert make_spec_builder(make_settings(rdb, other), "process")(row(1)).env[credentials.TOKEN_ENV] != one


def test_tokens_are_an_hmac_of_the_bot_id():
    assert credentials.bot_token(b"k", 7) == credentials.bot_token(b"k", 7)
    assert credentials.bot_token(b"k", 7) != credentials.bot_token(b"k2", 7)
    assert credentials.token_digest("abc") == hashlib.sha256(b"abc").digest()


class Inner:
    """A runtime that records what it was asked."""

    kind = "fake"

    def __init__(self) -> None:
        self.started: list[WorkloadSpec] = []
        self.calls: list[str] = []

    async def start(self, spec: WorkloadSpec) -> Observed:
        self.started.append(spec)
        self.calls.append("start")
        return Observed(bot_id=spec.bot_id, workload_id="w", state="running", config_version=spec.config_version)

    async def remove(self, bot_id: int) -> None:
        self.calls.append("remove")

    async def observe(self) -> dict[int, Observed]:
        return {}


def spec(bot_id: int, token: str | None) -> WorkloadSpec:
    env = {credentials.TOKEN_ENV: token} if token else {}
    return WorkloadSpec(bot_id=bot_id, config_version=1, name=f"gordon-bot-{bot_id}", image="gordon-bot:1",
                        command=("true",), env=env)


async def test_the_token_is_registered_before_the_workload_starts(rdb):
    admin = await connect(rdb.admin_url)
    pool = await create_pool(rdb.manager_url, min_size=1, max_size=2)  # as gordon_manager
    try:
        bot_id = await admin.fetchval(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by)"
            " VALUES ($1, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'test') RETURNING id",
            f"cred-{uuid.uuid4().hex[:8]}")
        inner = Inner()
        runtime = CredentialedRuntime(inner, pool)
        assert runtime.kind == "fake" and await runtime.observe() == {}  # the rest is the inner runtime's
        for token in ("first-token", "first-token", "second-token"):  # a restart, then a new key
            await runtime.start(spec(bot_id, token))
            stored = await admin.fetchval("SELECT token_sha256 FROM trading.bot_credentials WHERE bot_id = $1",
                                          bot_id)
            assert stored == credentials.token_digest(token)
        assert [s.bot_id for s in inner.started] == [bot_id] * 3
        # a new token: the workload left from before (the old token in its environment) is recreated
        assert inner.calls == ["start", "start", "remove", "start"]
        await runtime.start(spec(bot_id, None))  # a spec without a token (not a bot runner) registers nothing
        assert inner.calls[-1] == "start" and len(inner.started) == 4
    finally:
        await pool.close()
        await admin.close()


class DownPool:
    async def fetchval(self, *_args):
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")


async def test_no_start_when_the_token_cannot_be_registered():
    inner = Inner()
    with pytest.raises(RuntimeUnavailable, match="credential"):
        await CredentialedRuntime(inner, DownPool()).start(spec(5, "tok"))  # type: ignore[arg-type]
    assert inner.started == []  # the reconciler backs off and retries
