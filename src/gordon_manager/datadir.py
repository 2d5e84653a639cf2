"""Secrets the service generates once and keeps in its data dir (operator token, cursor key).

The data dir is private (0700) and each secret file 0600, also when they existed before with
looser modes (a file copied or created by hand keeps its umask's 0644 otherwise). One exception:
run as root, the embedded PostgreSQL runs as its own system user and must traverse the data dir to
reach ``pgdata`` (itself 0700, its own), so the data dir is then 0711: others may pass through, not
list it nor read anything in it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path, *, mode: int = DIR_MODE) -> Path:
    """Create ``path`` (and parents) if needed and make it ``mode`` (best effort on foreign owners)."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(path, mode)
    return path


def data_dir_mode() -> int:
    """0700, or 0711 as root (see the module docstring)."""
    return 0o711 if os.geteuid() == 0 else DIR_MODE


def private_file(path: Path) -> None:
    """Make an existing file 0600 (best effort on foreign owners)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        os.chmod(path, FILE_MODE)


def load_or_generate(data_dir: Path, name: str) -> tuple[str, bool]:
    """The secret stored in ``data_dir/name``, or a new random one written there (mode 0600).

    Returns (secret, generated).
    """
    path = data_dir / name
    private_dir(data_dir, mode=data_dir_mode())
    if path.exists():
        private_file(path)
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, False
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:  # created 0600 (an existing one was made 0600 above)
        out.write(value + "\n")
    return value, True
