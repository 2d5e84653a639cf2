"""dockerd + docker-socket-proxy + a tiny bot image, started and torn down as one unit."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.infra.dockerd import DockerDaemon
from tests.infra.haproxy import SocketProxy
from tests.infra.images import import_image
from tests.infra.swarm import init_swarm

MANAGED_FILTER = json.dumps({"label": ["gordon.managed=true"]})


@dataclass
class DockerStack:
    """Handles on a running test stack."""

    root: Path
    daemon: DockerDaemon
    proxy: SocketProxy
    raw: httpx.Client
    image: str

    @property
    def proxy_url(self) -> str:
        """URL of the socket proxy (what the manager is configured with)."""
        return self.proxy.url

    def init_swarm(self) -> str:
        """Turn the daemon into a single-node swarm manager (idempotent)."""
        return init_swarm(self.raw)


def remove_managed(raw: httpx.Client) -> None:
    """Delete every gordon-labelled service and container, through the raw socket."""
    info = raw.get("/info").json()
    if (info.get("Swarm") or {}).get("ControlAvailable"):
        for service in raw.get("/services", params={"filters": MANAGED_FILTER}).json():
            raw.delete(f"/services/{service['ID']}")
    for item in raw.get("/containers/json", params={"all": "1", "filters": MANAGED_FILTER}).json():
        raw.delete(f"/containers/{item['Id']}", params={"force": "1", "v": "1"})


@contextlib.contextmanager
def docker_stack(*, image_repo: str = "gordon-bot", image_tag: str = "test") -> Iterator[DockerStack]:
    """Start dockerd and haproxy in a fresh /tmp dir, import the busybox image; clean all up on exit."""
    # /tmp directly: unix socket paths are limited to 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="gordon-docker-", dir="/tmp"))
    daemon = DockerDaemon(root=root / "dockerd")
    proxy = SocketProxy(socket_path=daemon.socket_path, work_dir=root / "proxy")
    raw: httpx.Client | None = None
    try:
        daemon.start()
        raw = daemon.client()
        image = import_image(raw, repo=image_repo, tag=image_tag)
        proxy.start()
        yield DockerStack(root=root, daemon=daemon, proxy=proxy, raw=raw, image=image)
    finally:
        proxy.stop()
        if raw is not None:
            raw.close()
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
