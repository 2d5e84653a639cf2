"""Locate system binaries; a missing one fails the test run with the command that installs it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

INSTALL_HINT = "install the system test dependencies with: sudo bash ci/install-system-deps.sh"
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def require_binary(name: str, *, package: str) -> str:
    """Absolute path of `name`, or pytest.fail naming the Debian package and the install script."""
    # sbin is often missing from a non-login PATH (dockerd and haproxy live there on Debian).
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))
    if path is None:
        pytest.fail(
            f"required binary {name!r} (Debian package {package}) not found; {INSTALL_HINT}", pytrace=False
        )
    return path


def require_root(what: str) -> None:
    """Fail (never skip) when not root: dockerd needs it."""
    if os.geteuid() != 0:
        pytest.fail(f"{what} needs root (run the tests as root, e.g. in CI); {INSTALL_HINT}", pytrace=False)


CHROMIUM_HINT = ("Chromium is missing: install it with `apt-get install chromium` (ci/install-system-deps.sh "
                 "does) and Playwright with `.venv/bin/pip install -e '.[test]'`")


def require_chromium() -> str:
    """Debian's Chromium for Playwright (``executable_path``; browsers are not downloaded here), or a failure
    with the install hint, never a skip."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(CHROMIUM_HINT, pytrace=False)
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail(CHROMIUM_HINT, pytrace=False)
    return path


DASK_HINT = ("the `dask` command (PyPI package `distributed`, a dependency of gordon-manager) is missing: "
             "install it with `.venv/bin/pip install -e '.[test]'`")


def require_dask() -> str:
    """The venv's `dask` command (the workers must import this gordon-manager), or a failure saying how to
    install it."""
    path = shutil.which("dask", path=str(Path(sys.executable).parent)) or shutil.which("dask")
    if path is None:
        pytest.fail(DASK_HINT, pytrace=False)
    try:
        import distributed  # noqa: F401
    except ImportError:
        pytest.fail(DASK_HINT, pytrace=False)
    return path
