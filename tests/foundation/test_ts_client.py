"""The generated TypeScript client in clients/ts (issue 15, item 7).

* src/schema.d.ts and src/ws.d.ts are what the generator writes from openapi.yaml and asyncapi.yaml now
  (``make openapi``);
* the client and the example compile with ``tsc --strict``;
* the example, compiled, runs against a real server: list bots, create one with the operator token,
  a 422 problem read as typed, a run's equity downsampled.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gordon_manager.app import create_app
from tests.conftest import TEST_OPERATOR_TOKEN, create_database, make_settings
from tests.foundation.node import CLIENT, ensure_installed, run
from tests.infra.threaded_server import serve_in_thread


@pytest.mark.parametrize("generated", ["schema.d.ts", "ws.d.ts"])
def test_the_types_are_what_the_generator_writes(generated: str, tmp_path: Path):
    fresh = {"schema.d.ts": tmp_path / "schema.d.ts", "ws.d.ts": tmp_path / "ws.d.ts"}
    done = run(["node", "scripts/generate.mjs", str(fresh["schema.d.ts"]), str(fresh["ws.d.ts"])])
    assert done.returncode == 0, done.stderr
    committed = (CLIENT / "src" / generated).read_text(encoding="utf-8")
    assert committed == fresh[generated].read_text(encoding="utf-8"), (
        f"clients/ts/src/{generated} is stale: regenerate it with `make openapi` and commit it")


def test_every_ws_frame_is_typed():
    ws = (CLIENT / "src" / "ws.d.ts").read_text(encoding="utf-8")
    for frame in ("Subscribe", "Unsubscribe", "Ping", "Welcome", "Snapshot", "EventFrame", "Batch", "Subscribed",
                  "Unsubscribed", "Resync", "Error", "Heartbeat"):
        assert f'components["schemas"]["{frame}"]' in ws.split("ClientFrame:")[1], frame
    assert "ServerFrame:" in ws and "OutboxEvent:" in ws and 'channel: "bot_status";' in ws


def test_the_client_and_the_example_compile_strict():
    done = run(["tsc", "--strict", "--noEmit", "-p", "tsconfig.json"])
    assert done.returncode == 0, f"tsc --strict failed:\n{done.stdout}\n{done.stderr}"


def test_the_package_pins_what_it_uses():
    package = json.loads((CLIENT / "package.json").read_text(encoding="utf-8"))
    assert package["private"] is True
    pinned = {**package["dependencies"], **package["devDependencies"]}
    assert {"openapi-fetch", "openapi-typescript", "typescript", "@stoplight/spectral-cli", "js-yaml", "ws"} <= set(pinned)
    assert all(version[0].isdigit() for version in pinned.values()), pinned  # exact versions, no ranges
    lock = json.loads((CLIENT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"][""]["devDependencies"] == package["devDependencies"]


# -- the example against a real server ---------------------------------------------------------------
@pytest.fixture(scope="module")
def base_url(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """create_app() on a loopback port (uvicorn in a thread), on a fresh database."""
    database = asyncio.run(create_database(pg_server_url))
    settings = make_settings(database, tmp_path_factory.mktemp("ts-client-data"))
    with serve_in_thread(create_app(settings), name="ts-client-uvicorn") as url:
        yield url


def _compile(build: Path) -> None:
    shutil.rmtree(build, ignore_errors=True)
    done = run(["tsc", "-p", "tsconfig.json", "--noEmit", "false", "--outDir", str(build), "--rootDir", "."])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_live_example_runs_against_the_manager(base_url: str):
    """examples/live.ts: a typed subscription sees a new bot's event, and resubscribes with `since`."""
    ensure_installed()
    # inside clients/ts/node_modules (ignored by git), so that the compiled example finds the `ws` package
    build = Path(tempfile.mkdtemp(prefix=".live-example-", dir=CLIENT / "node_modules"))
    try:
        _compile(build)
        result = subprocess.run(["node", str(build / "examples" / "live.js"), base_url, TEST_OPERATOR_TOKEN],
                                cwd=CLIENT, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["createdId"] > 0 and report["eventId"] > 0
    assert report["resubscribedSince"] is not None and report["resubscribedSince"] >= report["eventId"]


def test_the_example_runs_against_the_manager(base_url: str, tmp_path: Path):
    ensure_installed()
    build = CLIENT / "build"
    shutil.rmtree(build, ignore_errors=True)
    done = run(["tsc", "-p", "tsconfig.json", "--noEmit", "false", "--outDir", str(build), "--rootDir", "."])
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        result = subprocess.run(["node", str(build / "examples" / "example.js"), base_url, TEST_OPERATOR_TOKEN],
                                cwd=CLIENT, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    created = report["created"]
    assert created["etag"] == '"1"' and created["location"] == f"/bots/{created['id']}"
    assert report["validationFields"] and all(f.startswith("params") for f in report["validationFields"])


def test_connect_live_replaces_a_silent_connection_and_resumes():
    """clients/ts/test/live.test.ts under `node --test`: the silence watchdog and the resume point."""
    ensure_installed()
    build = Path(tempfile.mkdtemp(prefix=".live-unit-", dir=CLIENT / "node_modules"))
    try:
        _compile(build)
        result = subprocess.run(["node", "--test", str(build / "test")], cwd=CLIENT, capture_output=True,
                                text=True, timeout=120)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 2" in result.stdout and "# fail 0" in result.stdout
