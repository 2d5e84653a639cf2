"""openapi.yaml at the repo root is what the app serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from gordon_manager.app import create_app
from gordon_manager.cli import render_openapi
from gordon_manager.version import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_yaml_is_current():
    committed = (ROOT / "openapi.yaml").read_text(encoding="utf-8")
    current = render_openapi(create_app())
    assert committed == current, (
        "openapi.yaml is stale: regenerate it with `make openapi` "
        "(or `.venv/bin/gordon-manager openapi > openapi.yaml`) and commit it")


def test_openapi_info_carries_the_version():
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert spec["info"]["version"] == __version__ == "3.8.0"
    assert spec["info"]["title"] == "gordon-manager"


async def test_served_spec_equals_the_file(client):
    served = (await client.get("/openapi.json")).json()
    assert served == yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
