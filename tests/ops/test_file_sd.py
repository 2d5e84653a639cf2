"""File-SD: the manager writes running bots' targets; a real Prometheus scrapes them."""

from __future__ import annotations

import json
import os
import stat

import httpx
import pytest

from gordon_manager.db.connect import create_pool
from gordon_manager.observability import metrics
from gordon_manager.observability.file_sd import FileSdWriter, render_targets, write_atomic
from tests.conftest import wait_for


def _sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


def test_render_is_deterministic_and_labelled():
    rows = [{"bot_id": 7, "name": "alpha", "strategy": "donchian_breakout", "symbol": "BTCUSDT", "mode": "paper",
             "config_version": 3, "metrics_port": 9107}]
    first = render_targets(rows)
    assert first == render_targets([dict(rows[0])])
    assert json.loads(first) == [{"targets": ["127.0.0.1:9107"], "labels": {
        "bot_id": "7", "name": "alpha", "strategy": "donchian_breakout", "symbol": "BTCUSDT", "mode": "paper",
        "config_version": "3"}}]
    assert json.loads(render_targets([])) == []


def test_write_atomic_replaces_readably_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sd" / "bots.json"
    write_atomic(path, b"[]\n")
    write_atomic(path, b'[{"targets": []}]\n')
    assert path.read_bytes() == b'[{"targets": []}]\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["bots.json"]


def test_write_atomic_failure_leaves_no_temp_file(tmp_path):
    target = tmp_path / "bots.json"
    target.mkdir()  # os.replace cannot put a file over a non-empty directory
    (target / "keep").write_text("x")
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["bots.json"]
    assert (target / "keep").read_text() == "x"


async def test_writer_rewrites_only_when_the_set_changes(database, bots, tmp_path):
    pool = await create_pool(database.manager_url, min_size=1, max_size=2)
    try:
        path = tmp_path / "bots.json"
        writer = FileSdWriter(pool=pool, path=path)
        await writer.setup()
        bot = await bots.create(serve_metrics=False)
        before = _sample("gordon_manager_file_sd_updates_total")
        durations = _sample("gordon_manager_file_sd_write_duration_seconds_count")
        await writer.run_once()
        assert _sample("gordon_manager_file_sd_updates_total") == before + 1
        assert _sample("gordon_manager_file_sd_write_duration_seconds_count") == durations + 1
        groups = {g["labels"]["bot_id"]: g for g in json.loads(path.read_text())}
        assert groups[str(bot.id)]["targets"] == [f"127.0.0.1:{bot.port}"]
        assert groups[str(bot.id)]["labels"]["name"] == bot.name
        mtime = path.stat().st_mtime_ns
        await writer.run_once()
        await writer.run_once()
        assert _sample("gordon_manager_file_sd_updates_total") == before + 1
        assert path.stat().st_mtime_ns == mtime
        await bots.set_state(bot, "stopped")
        await writer.run_once()
        assert str(bot.id) not in {g["labels"]["bot_id"] for g in json.loads(path.read_text())}
        assert _sample("gordon_manager_file_sd_updates_total") == before + 2
        # A restarted writer finds the same content on disk and does not rewrite it.
        again = FileSdWriter(pool=pool, path=path)
        await again.setup()
        await again.run_once()
        assert _sample("gordon_manager_file_sd_updates_total") == before + 2
    finally:
        await pool.close()


async def test_prometheus_scrapes_the_bots_the_manager_lists(prom_stack, ops_app, bots):
    first = await bots.create()
    second = await bots.create(mode="live", symbol="ETHUSDT")
    async with ops_app(file_sd_path=prom_stack.sd_file) as (app, _client):
        async with httpx.AsyncClient(base_url=prom_stack.prometheus.url, timeout=2.0) as prom:

            async def up(bot_id: int) -> float | None:
                body = (await prom.get("/api/v1/query", params={"query": f'up{{bot_id="{bot_id}"}}'})).json()
                result = body["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            assert await wait_for(lambda: up(first.id), timeout=15) == 1.0
            assert await wait_for(lambda: up(second.id), timeout=15) == 1.0
            labels = (await prom.get("/api/v1/query", params={"query": f'up{{bot_id="{second.id}"}}'})).json()[
                "data"]["result"][0]["metric"]
            assert labels | {"instance": "", "job": ""} == labels | {
                "bot_id": str(second.id), "name": second.name, "strategy": "donchian_breakout", "symbol": "ETHUSDT",
                "mode": "live", "config_version": "1", "instance": "", "job": ""}
            assert labels["job"] == "gordon-bots"

            # The bot stops: it leaves the file within a poll and Prometheus drops the target.
            await bots.set_state(first, "stopped")

            async def dropped() -> bool:
                active = (await prom.get("/api/v1/targets", params={"state": "active"})).json()["data"]
                ids = {t["labels"].get("bot_id") for t in active["activeTargets"]}
                return str(first.id) not in ids and str(second.id) in ids

            def listed() -> set[str]:
                return {g["labels"]["bot_id"] for g in json.loads(prom_stack.sd_file.read_text())}

            await wait_for(lambda: str(first.id) not in listed(), timeout=5)
            await wait_for(dropped, timeout=15)
            assert app.state.ctx.services.file_sd.failures == 0


def test_a_container_is_its_own_target():
    """Issue 17: a bot container is scraped on its address on the bots' network, a process on the host."""
    base = {"name": "a", "strategy": "s", "symbol": "BTCUSDT", "mode": "paper", "config_version": 1}
    rows = [{**base, "bot_id": 1, "metrics_port": 9100, "metrics_host": "10.217.0.5"},
            {**base, "bot_id": 2, "metrics_port": 9107, "metrics_host": None}]
    targets = [group["targets"] for group in json.loads(render_targets(rows))]
    assert targets == [["10.217.0.5:9100"], ["127.0.0.1:9107"]]
