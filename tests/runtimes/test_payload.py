"""The payload allow-list: forbidden container settings cannot be produced."""

from __future__ import annotations

import pytest

from gordon_manager.runtimes import PayloadPolicy, RuntimeConfigError, WorkloadSpec
from gordon_manager.runtimes.payload import (
    CONTAINER_KEYS,
    HOST_CONFIG_KEYS,
    container_payload,
    image_allowed,
    image_repository,
    service_payload,
)

POLICY = PayloadPolicy(allowed_images=("gordon-bot", "ghcr.io/dlepaux/"))


def spec(**overrides) -> WorkloadSpec:
    values = dict(
        bot_id=42,
        config_version=3,
        name="gordon-bot-42",
        image="ghcr.io/dlepaux/gordon-manager:3.8.0",
        command=("gordon-manager", "bot"),
        env={"GORDON_BOT_ID": "42"},
        cpu_limit=1.5,
        memory_limit_mb=256,
    )
    values.update(overrides)
    return WorkloadSpec(**values)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("gordon-bot", True),
        ("gordon-bot:test", True),
        ("gordon-bot/extra:1", True),
        ("gordon-bot@sha256:" + "a" * 64, True),
        ("ghcr.io/dlepaux/gordon-manager:3.8.0", True),
        ("ghcr.io/dlepaux/x/y:latest", True),
        ("gordon-bot-evil:1", False),
        ("ghcr.io/dlepauxevil/x:1", False),
        ("ghcr.io/other/gordon-bot:1", False),
        ("docker.io/library/gordon-bot:1", False),
        ("alpine", False),
        ("", False),
        ("gordon-bot:bad tag", False),
        ("GORDON-BOT", False),
        ("gordon-bot;rm -rf /", False),
    ],
)
def test_image_allow_list_is_a_repository_prefix_match(image: str, allowed: bool) -> None:
    assert image_allowed(image, POLICY.allowed_images) is allowed


def test_image_repository_strips_tag_and_digest() -> None:
    assert image_repository("localhost:5000/a/b:tag") == "localhost:5000/a/b"
    assert image_repository("a@sha256:" + "0" * 64) == "a"


def test_container_payload_is_locked_down() -> None:
    payload = container_payload(spec(), policy=POLICY)
    host = payload["HostConfig"]
    assert set(payload) <= CONTAINER_KEYS and set(host) <= HOST_CONFIG_KEYS
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and "CapAdd" not in host
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["NetworkMode"] == "none" and payload["NetworkDisabled"] is True
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["NanoCpus"] == 1_500_000_000 and host["Memory"] == host["MemorySwap"] == 256 * 1024 * 1024
    for forbidden in (
        "Binds",
        "Mounts",
        "Devices",
        "PidMode",
        "IpcMode",
        "UsernsMode",
        "CapAdd",
        "PortBindings",
        "VolumesFrom",
        "Sysctls",
        "CgroupParent",
        "DeviceRequests",
    ):
        assert forbidden not in host
    assert "Volumes" not in payload and "Entrypoint" not in payload
    assert payload["Labels"] == {
        "gordon.managed": "true",
        "gordon.runtime": "docker",
        "gordon.bot_id": "42",
        "gordon.config_version": "3",
    }
    assert payload["Env"] == ["GORDON_BOT_ID=42"] and payload["Cmd"] == ["gordon-manager", "bot"]


def test_env_cannot_override_labels_or_inject_keys() -> None:
    payload = container_payload(spec(env={"A": "1", "HostConfig": "x"}), policy=POLICY)
    assert payload["Env"] == ["A=1", "HostConfig=x"]  # just env text, never a payload key
    with pytest.raises(RuntimeConfigError):
        container_payload(spec(env={"BAD=KEY": "1"}), policy=POLICY)
    with pytest.raises(RuntimeConfigError):
        container_payload(spec(env={"K": "nul\x00"}), policy=POLICY)


def test_readonly_rootfs_and_user_options() -> None:
    policy = PayloadPolicy(
        allowed_images=("gordon-bot",),
        readonly_rootfs=True,
        user="1000:1000",
        network="gordon-bots",
        pids_limit=None,
    )
    payload = container_payload(
        spec(image="gordon-bot:1", command=(), cpu_limit=None, memory_limit_mb=None), policy=policy
    )
    host = payload["HostConfig"]
    assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
    assert payload["User"] == "1000:1000" and host["NetworkMode"] == "gordon-bots"
    assert (
        "Cmd" not in payload and "NanoCpus" not in host and "Memory" not in host and "PidsLimit" not in host
    )
    svc = service_payload(spec(image="gordon-bot:1", command=(), cpu_limit=None), policy=policy)
    assert svc["TaskTemplate"]["Networks"] == [{"Target": "gordon-bots"}]
    assert svc["TaskTemplate"]["ContainerSpec"]["User"] == "1000:1000"
    assert "Args" not in svc["TaskTemplate"]["ContainerSpec"]


@pytest.mark.parametrize("network", ["host", "container:abc", "ns:/proc/1/ns/net", "", "bad name"])
def test_host_and_shared_networks_are_refused(network: str) -> None:
    with pytest.raises(RuntimeConfigError):
        PayloadPolicy(allowed_images=("gordon-bot",), network=network)


def test_policy_needs_images_and_refuses_root_user() -> None:
    with pytest.raises(RuntimeConfigError):
        PayloadPolicy(allowed_images=())
    with pytest.raises(RuntimeConfigError):
        PayloadPolicy(allowed_images=(" ",))
    with pytest.raises(RuntimeConfigError):
        PayloadPolicy(allowed_images=("gordon-bot",), user="root")
    with pytest.raises(RuntimeConfigError):
        PayloadPolicy(allowed_images=("gordon-bot",), user="0:0")


@pytest.mark.parametrize(
    "bad",
    [
        {"image": "alpine:3"},
        {"image": "not a reference"},
        {"name": "../etc"},
        {"name": ""},
        {"command": ("ok", "nul\x00")},
        {"cpu_limit": 0.0},
        {"cpu_limit": -1.0},
        {"memory_limit_mb": 1},
    ],
)
def test_invalid_specs_are_config_errors(bad: dict) -> None:
    with pytest.raises(RuntimeConfigError):
        container_payload(spec(**bad), policy=POLICY)
    with pytest.raises(RuntimeConfigError):
        service_payload(spec(**bad), policy=POLICY)


def test_service_payload_is_locked_down() -> None:
    svc = service_payload(spec(), policy=POLICY)
    template = svc["TaskTemplate"]
    container = template["ContainerSpec"]
    assert svc["Mode"] == {"Replicated": {"Replicas": 1}}
    assert svc["Labels"]["gordon.runtime"] == "swarm" and container["Labels"] == svc["Labels"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert container["CapabilityDrop"] == ["ALL"] and "CapabilityAdd" not in container
    for forbidden in ("Mounts", "Privileges", "Hosts", "Sysctls"):
        assert forbidden not in container
    assert "Networks" not in template and "EndpointSpec" not in svc
    assert template["Resources"]["Limits"] == {
        "NanoCPUs": 1_500_000_000,
        "MemoryBytes": 256 * 1024 * 1024,
        "Pids": 512,
    }
