"""The console's unit tests (Vitest: the live hub, the fleet store, formatting, routes, the form's spec) run by `make test`."""

from __future__ import annotations

import subprocess

from tests.console.conftest import CONSOLE, build_console


def test_vitest_passes():
    build_console()  # installs console/node_modules from the lock when needed
    done = subprocess.run(["npx", "--no-install", "vitest", "run", "--reporter=dot"], cwd=CONSOLE, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
