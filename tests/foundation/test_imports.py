"""Every module of the package imports on its own, in a fresh interpreter (no hidden reliance on another
module having been imported first, no import cycle that only a lucky order hides)."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "gordon_manager"


def modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # an entry point runs its command when imported (``python -m``)
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_alone(name: str) -> tuple[str, int, str]:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
    return name, done.returncode, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def test_every_module_imports_on_its_own():
    names = modules()
    assert len(names) > 100 and "gordon_manager.cli" in names and "gordon_manager.runs.bot_events" in names
    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(n, err) for n, code, err in pool.map(import_alone, names) if code != 0]
    assert failed == []


def test_the_cli_is_the_top_layer():
    """No domain module imports the command line (cli/ imports the domains, never the reverse)."""
    importing = re.compile(r"^\s*(from gordon_manager\.cli\b|import gordon_manager\.cli\b|from gordon_manager import cli\b)",
                           re.M)
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.parent.name != "cli" and importing.search(path.read_text())]
    assert offenders == []
