"""The pinned npm install of clients/ts (openapi-typescript, openapi-fetch, TypeScript, Spectral) for the tests.

``npm ci`` runs only when ``node_modules`` is missing or was installed from another package-lock.json
(its hash is kept in ``node_modules/.gordon-lock-sha256``), under a file lock so that concurrent test
processes install once. Node.js and npm missing is a failure with the install hint, never a skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "ts"
LOCK = CLIENT / "package-lock.json"
STAMP = CLIENT / "node_modules" / ".gordon-lock-sha256"
INSTALL_HINT = ("Node.js ≥ 20 and npm are needed to check the TypeScript client and lint openapi.yaml: "
                "`apt-get install nodejs npm` (or https://nodejs.org), then `cd clients/ts && npm ci`")


def _lock_hash() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def ensure_installed() -> Path:
    """clients/ts with its locked dependencies installed; returns the directory."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(INSTALL_HINT)
    wanted = _lock_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return CLIENT
    with open(CLIENT / ".npm-install.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (STAMP.exists() and STAMP.read_text().strip() == wanted):
            # --ignore-scripts: the tests need the tools, not the package's own build (npm run build)
            done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=CLIENT,
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"`npm ci` in clients/ts failed:\n{done.stdout}\n{done.stderr}\n{INSTALL_HINT}")
            STAMP.write_text(wanted + "\n")
    return CLIENT


def run(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A tool of clients/ts/node_modules/.bin (or ``node``), run in clients/ts."""
    client = ensure_installed()
    command = ["node", *args[1:]] if args[0] == "node" else [str(client / "node_modules" / ".bin" / args[0]), *args[1:]]
    return subprocess.run(command, cwd=client, capture_output=True, text=True, timeout=timeout)
