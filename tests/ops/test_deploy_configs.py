"""The deploy/ examples are valid for the Debian prometheus/alertmanager tools.

(They also run for real: the session Prometheus loads deploy/prometheus/prometheus.yml's shape and
rules.yml, and the session AlertManager runs deploy/alertmanager/alertmanager.yml.)
"""

from __future__ import annotations

import subprocess

import httpx

from tests.infra.binaries import require_binary
from tests.ops.peers import DEPLOY_ALERTMANAGER, DEPLOY_PROMETHEUS, DEPLOY_RULES


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prometheus_example_and_rules_pass_promtool():
    promtool = require_binary("promtool", package="prometheus")
    assert "SUCCESS" in _run(promtool, "check", "config", str(DEPLOY_PROMETHEUS))
    assert "SUCCESS: 8 rules found" in _run(promtool, "check", "rules", str(DEPLOY_RULES))


def test_alertmanager_example_passes_amtool():
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    assert "SUCCESS" in _run(amtool, "check-config", str(DEPLOY_ALERTMANAGER))


def test_session_prometheus_loaded_the_deploy_rules(prom_stack):
    groups = httpx.get(f"{prom_stack.prometheus.url}/api/v1/rules", timeout=2).json()["data"]["groups"]
    names = {g["name"] for g in groups}
    assert {"gordon-manager", "gordon-bots", "gordon-ops-test"} <= names
    alerts = {r["name"] for g in groups for r in g["rules"]}
    assert {"GordonBotTargetDown", "GordonManagerPeerDown", "GordonPortfolioDrift"} <= alerts
