"""The project's image, built offline on the test dockerd: nothing is pulled.

* The base: a Debian bookworm rootfs with python3 made by ``mmdebstrap`` from Debian's package
  archive, imported like ``docker import`` as ``gordon-test-base:bookworm``.
* The wheels: ``pip wheel`` of the project and its dependencies on the host (as ``make image`` does).
* The image: the repository's Dockerfile, built through the raw socket's ``POST /build`` with
  ``BASE=gordon-test-base:bookworm`` and ``networkmode=none``.

Each test dockerd is fresh, so the three are cached under ``~/.cache/gordon-manager-tests`` (or
``GORDON_TEST_CACHE``): the rootfs tar by its package list, the wheels and the saved image by a hash
of the Dockerfile, pyproject.toml and every file of src/. A second ``make test`` only loads a tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.infra.binaries import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_REPO, BASE_TAG = "gordon-test-base", "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
IMAGE_REPO = "ghcr.io/dlepaux/gordon-manager"
IMAGE_TAG = "3.8.0"
IMAGE = f"{IMAGE_REPO}:{IMAGE_TAG}"
# What goes into the image: a change to any of these is a new image.
_IMAGE_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "deploy/docker", "src", "console/dist")


def cache_dir() -> Path:
    path = Path(os.environ.get("GORDON_TEST_CACHE") or Path.home() / ".cache" / "gordon-manager-tests")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _files(root: Path, rel: str) -> list[Path]:
    path = root / rel
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".so")


def inputs_hash(root: Path = REPO_ROOT) -> str:
    """sha256 over the image's inputs (paths and bytes), 16 hex digits."""
    digest = hashlib.sha256()
    digest.update(base_key().encode())
    for rel in _IMAGE_INPUTS:
        for path in _files(root, rel):
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def base_key() -> str:
    return "bookworm-" + hashlib.sha256(" ".join(BASE_PACKAGES).encode()).hexdigest()[:12]


def base_rootfs() -> Path:
    """The cached Debian rootfs tar, made by mmdebstrap when missing (about 30 s, 170 MB)."""
    target = cache_dir() / f"base-{base_key()}.tar"
    if target.exists():
        return target
    mmdebstrap = require_binary("mmdebstrap", package="mmdebstrap")
    partial = target.with_name(f"{target.stem}.partial.tar")  # mmdebstrap picks its output format by the suffix
    args = [mmdebstrap, "--quiet", "--variant=apt", "--format=tar", f"--include={','.join(BASE_PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*", "bookworm", str(partial),
            os.environ.get("GORDON_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        pytest.fail(f"mmdebstrap failed (is Debian's archive reachable?):\n{result.stderr[-2000:]}", pytrace=False)
    partial.rename(target)
    return target


def build_wheels(dest: Path, *, python: str = sys.executable) -> Path:
    """``pip wheel`` of the project and its dependencies into ``dest`` (what ``make image`` runs)."""
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                             "--wheel-dir", str(dest), str(REPO_ROOT)], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{result.stderr[-3000:]}", pytrace=False)
    return dest


def build_context(wheels: Path, root: Path = REPO_ROOT) -> bytes:
    """The tar the Dockerfile is built from: itself, .dockerignore, deploy/docker, the built console and the
    wheels."""
    if not (root / "console" / "dist" / "index.html").exists():
        pytest.fail("the console is not built: run `make console` (make test builds it first)", pytrace=False)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in ("Dockerfile", ".dockerignore"):
            tar.add(root / rel, arcname=rel)
        for path in [*_files(root, "deploy/docker"), *_files(root, "console/dist")]:
            tar.add(path, arcname=str(path.relative_to(root)))
        for path in sorted(wheels.glob("*.whl")):
            tar.add(path, arcname=f"build/wheels/{path.name}")
    return buf.getvalue()


_CHUNK = 1 << 20


def _chunks(data: bytes | Path) -> Iterator[bytes]:
    """A request body in 1 MiB pieces: httpcore re-slices a large bytes body for every partial send
    on a unix socket (quadratic: minutes for a 400 MB image), but writes an iterator's chunks whole."""
    if isinstance(data, Path):
        with open(data, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk
        return
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield bytes(view[start:start + _CHUNK])


def _stream_errors(response: httpx.Response) -> tuple[list[str], str]:
    errors, log = [], []
    for line in response.iter_lines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            log.append(line)
            continue
        if item.get("error"):
            errors.append(str(item["error"]))
        if item.get("stream"):
            log.append(item["stream"])
    return errors, "".join(log)


def load_image(raw: httpx.Client, tar_path: Path) -> None:
    response = raw.post("/images/load", params={"quiet": "1"}, content=_chunks(tar_path),
                        headers={"Content-Type": "application/x-tar"}, timeout=600)
    response.raise_for_status()
    if '"error"' in response.text:
        raise RuntimeError(f"image load failed: {response.text[:500]}")


def save_image(raw: httpx.Client, image: str, dest: Path) -> None:
    partial = dest.with_suffix(".partial")
    with raw.stream("GET", f"/images/{image}/get", timeout=600) as response, open(partial, "wb") as out:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            out.write(chunk)
    partial.rename(dest)


def image_present(raw: httpx.Client, image: str) -> bool:
    return raw.get(f"/images/{image}/json").status_code == 200


def ensure_base(raw: httpx.Client) -> str:
    """gordon-test-base:bookworm on the daemon (imported from the cached rootfs)."""
    name = f"{BASE_REPO}:{BASE_TAG}"
    if not image_present(raw, name):
        response = raw.post("/images/create", params={"fromSrc": "-", "repo": BASE_REPO, "tag": BASE_TAG},
                            content=_chunks(base_rootfs()), headers={"Content-Type": "application/x-tar"},
                            timeout=600)
        response.raise_for_status()
        if '"error"' in response.text:
            raise RuntimeError(f"base import failed: {response.text[:500]}")
    return name


def build_image(raw: httpx.Client, *, tag: str = IMAGE, wheels: Path | None = None) -> dict:
    """Build the Dockerfile on the daemon with the local base, offline. Returns timings (seconds)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    base = ensure_base(raw)
    timings["base_s"] = time.monotonic() - started
    if wheels is None:
        wheels = cache_dir() / f"wheels-{inputs_hash()}"
        if not wheels.exists():
            t = time.monotonic()
            build_wheels(wheels.with_suffix(".partial"))
            wheels.with_suffix(".partial").rename(wheels)
            timings["wheels_s"] = time.monotonic() - t
    t = time.monotonic()
    params = {"t": tag, "buildargs": json.dumps({"BASE": base}), "networkmode": "none", "rm": "1", "forcerm": "1",
              "labels": json.dumps({"gordon.test": "true"})}
    with raw.stream("POST", "/build", params=params, content=_chunks(build_context(wheels)),
                    headers={"Content-Type": "application/x-tar"}, timeout=1200) as response:
        if response.status_code != 200:
            response.read()
            pytest.fail(f"docker build: HTTP {response.status_code}: {response.text[:2000]}", pytrace=False)
        errors, log = _stream_errors(response)
    if errors:
        pytest.fail(f"docker build failed: {errors}\n{log[-3000:]}", pytrace=False)
    timings["build_s"] = time.monotonic() - t
    return timings


def ensure_image(raw: httpx.Client, *, tag: str = IMAGE) -> str:
    """The project's image on the daemon: loaded from the cache, else built (and then cached)."""
    if image_present(raw, tag):
        return tag
    cached = cache_dir() / f"image-{inputs_hash()}.tar"
    if cached.exists():
        load_image(raw, cached)
        if image_present(raw, tag):
            return tag
    build_image(raw, tag=tag)
    for stale in cache_dir().glob("image-*.tar"):
        stale.unlink(missing_ok=True)  # one image tar is enough; old ones only fill the disk
    for stale in cache_dir().glob("wheels-*"):
        if stale.name != f"wheels-{inputs_hash()}":
            shutil.rmtree(stale, ignore_errors=True)
    save_image(raw, tag, cached)
    return tag


def image_size(raw: httpx.Client, tag: str = IMAGE) -> int:
    """Bytes of the image (all layers), as `docker images` reports it."""
    return int(raw.get(f"/images/{tag}/json").json()["Size"])
