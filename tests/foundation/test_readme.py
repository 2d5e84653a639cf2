"""The README's configuration table lists every setting."""

from __future__ import annotations

from pathlib import Path

from gordon_manager.settings import PeerSettings, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands():
    head = README[: README.index("## Configuration")]
    assert "make run" in head and "make test" in head


def test_every_env_var_is_in_the_configuration_table():
    names = []
    for name, field in Settings.model_fields.items():
        if name == "gordon_manager":
            names += [f"GORDON_MANAGER__{sub.upper()}" for sub in PeerSettings.model_fields]
        else:
            names.append(field.validation_alias.choices[0])
    missing = [n for n in names if f"| `{n}` |" not in README]
    assert not missing, f"README configuration table lacks {missing}"
    for seed_name in ("GORDON_MANAGER_BIND_ADDR", "GORDON_DATABASE_URL", "GORDON_BUS_NATS_URL",
                      "GORDON_MANAGER_OPERATOR_TOKEN", "GORDON_MANAGER__GORDON_RISK_OPERATOR_TOKEN",
                      "GORDON_MANAGER__GORDON_ALERTMANAGER_URL", "GORDON_MANAGER__GORDON_PROMETHEUS_URL",
                      "DOCKER_SOCKET_PROXY_URL"):
        assert seed_name in names
