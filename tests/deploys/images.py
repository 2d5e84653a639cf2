"""A tiny "Gordon service" image: busybox httpd serving /www (with a /health file, or without one)."""

from __future__ import annotations

import io
import json
import tarfile
import time

import httpx

from tests.infra.images import busybox_rootfs_tar

HTTPD_CMD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


def service_rootfs(*, healthy: bool, version: str) -> bytes:
    """The busybox rootfs plus /www/index.html (and /www/health when healthy)."""
    buf = io.BytesIO(busybox_rootfs_tar())
    with tarfile.open(fileobj=buf, mode="a") as tar:
        www = tarfile.TarInfo("www")
        www.type, www.mode, www.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(www)
        files = {"www/index.html": f"gordon service {version}\n".encode()}
        if healthy:
            files["www/health"] = b"ok\n"
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def import_service_image(raw: httpx.Client, *, repo: str, tag: str, healthy: bool) -> str:
    """Import it through the raw socket (like `docker import --change 'CMD [...]'`); returns repo:tag."""
    response = raw.post("/images/create", params=[("fromSrc", "-"), ("repo", repo), ("tag", tag),
                                                  ("changes", f"CMD {json.dumps(HTTPD_CMD)}")],
                        content=service_rootfs(healthy=healthy, version=tag),
                        headers={"Content-Type": "application/x-tar"})
    response.raise_for_status()
    if "error" in response.text.lower():
        raise RuntimeError(f"image import failed: {response.text[:500]}")
    return f"{repo}:{tag}"
