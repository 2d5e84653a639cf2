"""deploy/compose.yaml, the production stack (issue 17, item 5): valid for Compose, and wired the way
the manager reads its settings (every GORDON_* variable is a setting; bots on the network the manager
puts them on; the proxy with the project's allow-list and never published).

Validated with Debian's `docker-compose` (v1.29, which reads the Compose Specification): `config -q`
fails on a schema error or a missing variable. The v2 plugin (`docker compose`) is not packaged in
Debian bookworm.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from gordon_manager.settings import Settings
from tests.infra.binaries import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def example_env() -> dict[str, str]:
    lines = (DEPLOY / "compose.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose", package="docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in example_env()}
    return subprocess.run([binary, "-p", "gordon", "-f", str(COMPOSE), "config"], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)


def test_compose_config_validates_with_the_example_env():
    result = compose_config(example_env())
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) == {"manager", "postgres", "nats", "docker-socket-proxy", "prometheus",
                                         "alertmanager"}


def test_a_missing_secret_is_refused():
    env = example_env()
    del env["GORDON_BOT_DB_PASSWORD"]
    result = compose_config(env)
    assert result.returncode != 0 and "GORDON_BOT_DB_PASSWORD" in result.stderr


def test_the_stack_is_wired_as_the_manager_reads_it():
    stack = yaml.safe_load(COMPOSE.read_text())
    services = stack["services"]
    manager_env = services["manager"]["environment"]
    aliases = set()
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None) or [name]
        aliases.update(str(c).upper() for c in choices)
    for key in manager_env:
        head = key.split("__", 1)[0]
        assert key.upper() in aliases or head.upper() in aliases, f"{key} is not a setting"
    assert stack["networks"]["bots"]["name"] == manager_env["GORDON_MANAGER_BOT_NETWORK"]
    for service in ("postgres", "nats", "prometheus"):
        assert "bots" in services[service]["networks"], f"bots reach/are reached by {service} on their network"
    proxy = services["docker-socket-proxy"]
    assert "ports" not in proxy and proxy["networks"] == ["control"] and stack["networks"]["control"]["internal"]
    assert any("docker-socket-proxy/haproxy.cfg" in v for v in proxy["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in services["manager"]["ports"])
    assert not any("docker.sock" in v for v in services["manager"].get("volumes", []))
    sd_path = manager_env["GORDON_MANAGER_FILE_SD_PATH"]
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    (bots_job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "gordon-bots"]
    sd_volume = next(v for v in services["manager"]["volumes"] if sd_path.startswith(v.split(":")[1] + "/"))
    prom_mount = next(v for v in services["prometheus"]["volumes"] if v.startswith(sd_volume.split(":")[0] + ":"))
    assert bots_job["file_sd_configs"][0]["files"][0].startswith(prom_mount.split(":")[1])
