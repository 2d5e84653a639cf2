"""What a bot workload is given (issue 17): containers get the bots' URLs, /metrics on every interface
of their network, and CPU/memory limits (the bot's resources.* labels, else the settings' defaults)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from gordon_manager.botrunner.labels import label_errors
from gordon_manager.reconcile.start import make_spec_builder
from gordon_manager.runtimes import RuntimeConfigError
from gordon_manager.settings import Settings


def settings(tmp_path, **overrides) -> Settings:
    values = dict(database_url=SecretStr("postgresql://gordon_manager@127.0.0.1/gordon"), data_dir=tmp_path,
                  bus_nats_url="nats://127.0.0.1:4222")
    values.update(overrides)
    return Settings(**values)


def row(**overrides):
    values = {"id": 4, "spec_version": 2, "image": "ghcr.io/dlepaux/gordon-manager:3.8.0", "desired_state": "running",
              "metrics_port": None, "labels": {}}
    values.update(overrides)
    return values


def test_a_container_gets_the_bots_urls_metrics_on_its_network_and_default_limits(tmp_path):
    build = make_spec_builder(settings(tmp_path, bot_nats_url="nats://nats:4222",
                                       bot_database_url=SecretStr("postgresql://gordon_bot:pw@postgres/gordon")),
                              "docker")
    spec = build(row())
    assert spec.command == ("gordon-manager", "bot")
    assert spec.env["GORDON_DATABASE_URL"] == "postgresql://gordon_bot:pw@postgres/gordon"
    assert spec.env["GORDON_BUS_NATS_URL"] == "nats://nats:4222"
    assert spec.env["GORDON_BOT_METRICS_PORT"] == "9100" and spec.env["GORDON_BOT_METRICS_ADDR"] == "0.0.0.0"
    assert (spec.cpu_limit, spec.memory_limit_mb) == (1.0, 512)
    limited = build(row(labels={"resources.cpu": "0.25", "resources.memory_mb": "128"}))
    assert (limited.cpu_limit, limited.memory_limit_mb) == (0.25, 128)
    with pytest.raises(RuntimeConfigError):
        build(row(labels={"resources.cpu": "lots"}))


def test_a_process_keeps_loopback_and_no_limits(tmp_path):
    spec = make_spec_builder(settings(tmp_path), "process")(row(metrics_port=9200))
    assert spec.env["GORDON_BOT_METRICS_PORT"] == "9200" and "GORDON_BOT_METRICS_ADDR" not in spec.env
    assert spec.env["GORDON_BUS_NATS_URL"] == "nats://127.0.0.1:4222"  # the manager's own, by default
    assert spec.cpu_limit is None and spec.memory_limit_mb is None


def test_resource_labels_are_checked_by_the_api():
    assert label_errors({"resources.cpu": "0.5", "resources.memory_mb": "256"}, mode="paper") == []
    fields = {e["field"] for e in label_errors({"resources.cpu": "0", "resources.memory_mb": "1",
                                                "resources.gpu": "1"}, mode="live")}
    assert fields == {"labels.resources.cpu", "labels.resources.memory_mb", "labels.resources.gpu"}
