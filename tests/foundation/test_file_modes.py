"""Secrets and logs on disk: the token file 0600 even when it existed, the data dir private, bot logs 0600."""

from __future__ import annotations

import os
import stat

from gordon_manager.datadir import data_dir_mode, load_or_generate


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_pre_existing_token_file_is_forced_to_0600_and_the_data_dir_made_private(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    token = data_dir / "operator-token"
    token.write_text("kept-token-value\n")
    os.chmod(token, 0o644)
    value, generated = load_or_generate(data_dir, "operator-token")
    assert (value, generated) == ("kept-token-value", False)
    assert mode(token) == 0o600
    assert mode(data_dir) == data_dir_mode() and mode(data_dir) & 0o066 == 0  # no read/write for others


def test_a_generated_secret_is_0600_from_its_creation(tmp_path):
    value, generated = load_or_generate(tmp_path / "fresh", "cursor-secret")
    assert generated and len(value) >= 32
    assert mode(tmp_path / "fresh" / "cursor-secret") == 0o600
    assert data_dir_mode() == (0o711 if os.geteuid() == 0 else 0o700)
