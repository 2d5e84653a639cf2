"""The committed haproxy config: the API sections the manager needs pass, everything else is 403."""

from __future__ import annotations

import httpx
import pytest

from gordon_manager.runtimes import RuntimeUnavailable
from gordon_manager.runtimes.docker_api import DockerAPI
from tests.infra import DockerStack
from tests.infra.haproxy import CONFIG_PATH, render_config

pytestmark = pytest.mark.docker

DENIED = [
    ("POST", "/volumes/create"),
    ("GET", "/volumes"),
    ("POST", "/networks/create"),
    ("POST", "/containers/abc/exec"),
    ("POST", "/exec/abc/start"),
    ("POST", "/containers/abc/attach"),
    ("PUT", "/containers/abc/archive"),
    ("POST", "/containers/abc/update"),
    ("POST", "/containers/prune"),
    ("POST", "/images/create"),
    ("DELETE", "/images/gordon-bot:test"),
    ("POST", "/build"),
    ("POST", "/commit"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/leave"),
    ("GET", "/secrets"),
    ("GET", "/configs"),
    ("GET", "/plugins"),
    ("GET", "/system/df"),
    ("POST", "/auth"),
    ("POST", "/v1.41/containers/abc/exec"),
    ("POST", "/containers/abc/%2e%2e/%2e%2e/volumes/create"),
    ("POST", "/containers/json/../../volumes/create"),
    ("POST", "/nodes/abc/update"),
    ("DELETE", "/nodes/abc"),
    ("GET", "/session"),
]
ALLOWED = [
    ("GET", "/_ping"),
    ("GET", "/v1.41/_ping"),
    ("GET", "/version"),
    ("GET", "/info"),
    ("GET", "/containers/json"),
    ("GET", "/images/json"),
    ("GET", "/images/gordon-bot:test/json"),
    ("GET", "/nodes"),
    ("GET", "/swarm"),
]


@pytest.mark.parametrize(("method", "path"), DENIED)
def test_denied_paths_get_403(docker_env: DockerStack, method: str, path: str) -> None:
    with httpx.Client(base_url=docker_env.proxy_url, timeout=5) as client:
        response = client.request(method, path, content=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 403, (method, path, response.text)


@pytest.mark.parametrize(("method", "path"), ALLOWED)
def test_needed_reads_pass(docker_env: DockerStack, method: str, path: str) -> None:
    with httpx.Client(base_url=docker_env.proxy_url, timeout=5) as client:
        response = client.request(method, path)
    # The daemon answers (503 for /swarm and /nodes when swarm mode is off), not the proxy's 403.
    assert response.status_code in (200, 503), (method, path, response.text)


async def test_a_403_from_the_proxy_is_runtime_unavailable(docker_env: DockerStack) -> None:
    api = DockerAPI(base_url=docker_env.proxy_url, api_version="1.41")
    try:
        with pytest.raises(RuntimeUnavailable, match="403"):
            await api.request("POST", "/volumes/create", json_body={})
        assert (await api.version())["ApiVersion"]
    finally:
        await api.close()


def test_render_config_needs_exactly_one_bind_and_server(tmp_path) -> None:
    text = CONFIG_PATH.read_text()
    rendered = render_config(text, port=1234, socket_path=tmp_path / "d.sock")
    assert "bind 127.0.0.1:1234" in rendered and f"server dockersocket {tmp_path / 'd.sock'}" in rendered
    with pytest.raises(ValueError):
        render_config(text + "\n    bind :9999\n", port=1, socket_path=tmp_path)
