"""asyncapi.yaml is valid for the official AsyncAPI parser (@asyncapi/parser, pinned in tools/asyncapi).

The parser runs under Node.js from a pinned local install: tools/asyncapi/package.json and its
package-lock.json are committed, node_modules is not; it is installed with `npm ci` when missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "asyncapi"
INSTALL_HINT = ("this test runs the official AsyncAPI parser under Node.js: install Node.js >= 18 with npm "
                "(e.g. `apt-get install nodejs npm`, or https://nodejs.org), then `npm ci --prefix tools/asyncapi`")


@pytest.fixture(scope="module")
def node() -> str:
    """node, with tools/asyncapi's pinned dependencies installed (npm ci when node_modules is missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"{'node' if node is None else 'npm'} not found; {INSTALL_HINT}", pytrace=False)
    if not (TOOL / "node_modules" / "@asyncapi" / "parser" / "package.json").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOL,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"`npm ci` failed in tools/asyncapi ({INSTALL_HINT}):\n{done.stderr[-3000:]}", pytrace=False)
    return node


def parse(node: str, path: Path) -> tuple[int, dict]:
    done = subprocess.run([node, "validate.mjs", str(path)], cwd=TOOL, capture_output=True, text=True, timeout=300)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the parser printed no report (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                    f"{done.stderr[-2000:]}", pytrace=False)


def test_the_pinned_parser_is_the_official_one():
    package = json.loads((TOOL / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((TOOL / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["dependencies"]["@asyncapi/parser"]
    assert pinned[0].isdigit(), "pin an exact version"
    assert lock["packages"]["node_modules/@asyncapi/parser"]["version"] == pinned


def test_asyncapi_yaml_is_valid_with_no_warning(node):
    code, report = parse(node, ROOT / "asyncapi.yaml")
    assert code == 0 and report["errors"] == [], report["errors"]
    assert report["warnings"] == []
    assert report["version"] == "3.0.0" and report["channels"] >= 5 and report["messages"] >= 17


def test_the_parser_refuses_a_broken_document(node, tmp_path):
    broken = tmp_path / "asyncapi.yaml"
    text = (ROOT / "asyncapi.yaml").read_text(encoding="utf-8")
    broken.write_text(text.replace("#/components/schemas/BreakerStateRow", "#/components/schemas/Missing"),
                      encoding="utf-8")
    code, report = parse(node, broken)
    assert code == 1 and any(e["code"] == "invalid-ref" for e in report["errors"])
