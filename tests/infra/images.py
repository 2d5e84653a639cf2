"""Tiny local images: a busybox-static rootfs imported like `docker import` (nothing is pulled)."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time

import httpx

from tests.infra.binaries import require_binary


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
    tar.addfile(info)


def busybox_rootfs_tar() -> bytes:
    """A tar of /bin/busybox plus a symlink per applet, and the usual empty top-level dirs."""
    busybox = require_binary("busybox", package="busybox-static")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            _add_dir(tar, directory, 0o1777 if directory == "tmp" else 0o755)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = len(passwd), 0o644
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def import_image(client: httpx.Client, *, repo: str, tag: str = "latest", rootfs: bytes | None = None) -> str:
    """Import a rootfs tar as repo:tag through the raw socket (POST /images/create?fromSrc=-)."""
    body = rootfs if rootfs is not None else busybox_rootfs_tar()
    response = client.post(
        "/images/create",
        params={"fromSrc": "-", "repo": repo, "tag": tag},
        content=body,
        headers={"Content-Type": "application/x-tar"},
    )
    response.raise_for_status()
    if "error" in response.text.lower():
        raise RuntimeError(f"image import failed: {response.text[:500]}")
    return f"{repo}:{tag}"
