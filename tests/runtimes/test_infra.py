"""The test infrastructure itself: a missing system binary fails loudly, never skips."""

from __future__ import annotations

import pytest

from tests.infra import INSTALL_HINT, busybox_rootfs_tar, free_port, require_binary, wait_until


def test_missing_binary_fails_with_the_install_command() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"ci/install-system-deps\.sh") as info:
        require_binary("gordon-no-such-binary", package="gordon-pkg")
    assert "gordon-pkg" in str(info.value) and INSTALL_HINT in str(info.value)


def test_sbin_binaries_are_found_without_sbin_on_path(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert require_binary("haproxy", package="haproxy").endswith("/haproxy")


def test_small_helpers() -> None:
    assert 0 < free_port() < 65536
    assert wait_until(lambda: True, timeout_s=0.1)
    assert not wait_until(lambda: 1 / 0, timeout_s=0.1, interval_s=0.02)
    assert len(busybox_rootfs_tar()) > 500_000
