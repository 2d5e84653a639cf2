"""Real-parts test infrastructure: dockerd, docker-socket-proxy (haproxy), swarm and tiny images.

Usable from any conftest; see tests/runtimes/conftest.py for the session fixtures built on it.
"""

from tests.infra.binaries import INSTALL_HINT, require_binary, require_root
from tests.infra.dockerd import DockerDaemon
from tests.infra.haproxy import SocketProxy
from tests.infra.images import busybox_rootfs_tar, import_image
from tests.infra.net import free_port, wait_until
from tests.infra.stack import DockerStack, docker_stack, remove_managed
from tests.infra.swarm import init_swarm, leave_swarm

__all__ = [
    "INSTALL_HINT",
    "DockerDaemon",
    "DockerStack",
    "SocketProxy",
    "busybox_rootfs_tar",
    "docker_stack",
    "free_port",
    "import_image",
    "init_swarm",
    "leave_swarm",
    "remove_managed",
    "require_binary",
    "require_root",
    "wait_until",
]
