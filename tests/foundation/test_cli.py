"""The `gordon-manager` command as a new user meets it: serve (embedded DB), restart, port taken, bad URL."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from gordon_manager.db.migrate import load_migrations

GM = [sys.executable, "-m", "gordon_manager.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GORDON_", "DOCKER_SOCKET"))}
    env.update({"GORDON_MANAGER_DATA_DIR": str(data_dir), "GORDON_MANAGER_BIND_ADDR": f"127.0.0.1:{port}",
                "GORDON_MANAGER_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not become healthy in time")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sigterm(proc: subprocess.Popen, *, timeout: float) -> None:
    """Stop `serve` as docker stop / systemd do; SIGKILL if it has not exited within ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def served(tmp_path):
    """Start `serve` with the embedded database; yield (port, proc, data_dir)."""
    data_dir = tmp_path / "gm-data"
    port = free_port()
    proc = subprocess.Popen([*GM, "serve"], env=env_for(data_dir, port), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        yield port, proc, data_dir
    finally:
        stop(proc)


async def _embedded_conn(data_dir: Path) -> asyncpg.Connection:
    return await asyncpg.connect(f"postgresql://postgres@/gordon?host={data_dir / 'pgdata'}")


async def test_serve_embedded_restart_keeps_data(served):
    port, proc, data_dir = served
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    conn = await _embedded_conn(data_dir)
    await conn.execute("INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by)"
                       " VALUES ('survivor', 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', 'test')")
    await conn.close()
    stop(proc)
    assert proc.returncode in (0, 130), proc.stderr.read()  # 130: stopped by Ctrl-C, as uvicorn reports it
    again = subprocess.Popen([*GM, "serve"], env=env_for(data_dir, port), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, again)
        conn = await _embedded_conn(data_dir)
        names = await conn.fetch("SELECT name FROM trading.bot_configs")
        applied = await conn.fetchval("SELECT count(*) FROM trading.schema_migrations")
        await conn.close()
        assert [r["name"] for r in names] == ["survivor"]
        assert applied == len(load_migrations())
    finally:
        stop(again)


def test_second_serve_on_the_same_port_says_the_port_is_taken(served):
    port, _proc, data_dir = served
    result = subprocess.run([*GM, "serve"], env=env_for(data_dir, port), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_line_naming_the_host(tmp_path):
    port = free_port()
    env = env_for(tmp_path, port, GORDON_DATABASE_URL="postgresql://gordon_manager@127.0.0.1:1/gordon")
    result = subprocess.run([*GM, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot connect to PostgreSQL at 127.0.0.1:1" in lines[0]


def test_bad_bind_address_is_a_clear_error(tmp_path):
    env = env_for(tmp_path, 1, GORDON_MANAGER_BIND_ADDR="not-an-address")
    result = subprocess.run([*GM, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid configuration" in result.stderr and "Traceback" not in result.stderr


async def test_sigterm_stops_serve_and_its_embedded_database(tmp_path):
    """docker stop / systemd send SIGTERM: the embedded PostgreSQL must be stopped too, not left behind."""
    import psutil

    data_dir = tmp_path / "gm-data"
    port = free_port()
    proc = subprocess.Popen([*GM, "serve"], env=env_for(data_dir, port), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        assert psutil.pid_exists(postmaster)
    finally:
        sigterm(proc, timeout=30)
    assert proc.returncode == 143, proc.stderr.read()
    psutil.wait_procs([psutil.Process(postmaster)] if psutil.pid_exists(postmaster) else [], timeout=30)
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_version_bind_help_and_log_formats(capsys):
    import io
    import logging

    from typer.testing import CliRunner

    from gordon_manager import __version__
    from gordon_manager.cli import app
    from gordon_manager.observability.logging import configure_logging

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"gordon-manager {__version__}"
    serve_help = runner.invoke(app, ["serve", "--help"]).output
    assert "--bind HOST:PORT" in serve_help
    backtest_help = runner.invoke(app, ["backtest", "--help"]).output
    assert "--from TIME" in backtest_help and "<str>" not in backtest_help and "<bool>" not in backtest_help

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)  # logging is global: put it back as it was, whatever happens
    try:
        for stream, fmt, json_expected in ((Terminal(), "auto", False), (io.StringIO(), "auto", True),
                                           (Terminal(), "json", True), (io.StringIO(), "text", False)):
            configure_logging("INFO", stream=stream, fmt=fmt)
            logging.getLogger("gordon.test").info("hello", extra={"bot_id": 7})
            line = stream.getvalue().strip()
            assert line.startswith("{") is json_expected, (fmt, line)
            assert "hello" in line and ("bot_id=7" in line or '"bot_id":7' in line)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_serve_bind_overrides_the_setting():
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**__import__("os").environ, "GORDON_MANAGER_BIND_ADDR": "127.0.0.1:1"}
        done = subprocess.run([sys.executable, "-m", "gordon_manager.cli", "serve", "--bind", f"127.0.0.1:{port}"],
                              env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr  # --bind, not the setting's :1


async def test_serve_with_the_embedded_database_stops_its_bot_processes_when_it_stops(tmp_path):
    """Through the real exit path (SIGTERM to `serve`, embedded database, process runtime): the bot the
    reconciler started is stopped before the database, and nothing fails on the way out.

    The stop used to run as an atexit hook, after the interpreter had stopped taking new threads: the
    runtime's first scan (asyncio.to_thread) raised there and the bots were left running against a
    database that was going away.
    """
    import psutil

    data_dir = tmp_path / "gm-data"
    port = free_port()
    proc = subprocess.Popen([*GM, "serve"], env=env_for(data_dir, port, GORDON_MANAGER_RECONCILE_INTERVAL_S="0.5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_healthy(port, proc)
        conn = await _embedded_conn(data_dir)
        try:
            await conn.execute("INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, created_by,"
                               " desired_state) VALUES ('exiting', 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1',"
                               " 'test', 'running')")
            workload = None
            deadline = time.monotonic() + 60
            while workload is None and time.monotonic() < deadline:
                workload = await conn.fetchval("SELECT workload_id FROM trading.bot_status"
                                               " WHERE observed_state = 'running'")
                if workload is None:
                    await asyncio.sleep(0.2)
        finally:
            await conn.close()
        assert workload is not None, "the reconciler did not start the bot in 60 s"
        bot = psutil.Process(int(workload.removeprefix("pid:")))
    finally:
        sigterm(proc, timeout=60)
    stderr = proc.stderr.read()
    assert proc.returncode == 143, stderr
    assert "stopped 1 bot process(es) with the embedded database" in stderr, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert not bot.is_running() or bot.status() == psutil.STATUS_ZOMBIE


