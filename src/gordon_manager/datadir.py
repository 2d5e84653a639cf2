"""Secrets the service generates once and keeps in its data dir (operator token, cursor key)."""

from __future__ import annotations

import secrets
from pathlib import Path


def load_or_generate(data_dir: Path, name: str) -> tuple[str, bool]:
    """The secret stored in ``data_dir/name``, or a new random one written there (mode 0600).

    Returns (secret, generated).
    """
    path = data_dir / name
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value, False
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value, True
