"""The bots' CPU group: bot processes moved into one cgroup (``GORDON_MANAGER_BOT_CGROUP``).

Why. A hundred bots woken by the same closing bar are a hundred runnable tasks. The kernel's fair
scheduler (EEVDF) weighs each of them like a PostgreSQL backend, and a backend that just ran (the
one that committed first, now back from its WAL flush) is placed behind every task woken before it:
the first decisions of each bar waited ~100 ms for the CPU between their commit and their publish,
whatever the backends' nice value (bench/live_loop.py: the p99 of commit → executor receipt).
In one cgroup the bots are ONE scheduling entity against PostgreSQL, NATS and the manager, so the
way from a commit to the executor no longer queues behind the bots still deciding. Measured with
``bench/live_loop.py --bots-cgroup 1024``; the README's live-loop section has the figures.

The group is made by whoever runs the manager (a systemd slice with ``Delegate=yes``, or a
directory created under the cpu controller): cgroup v2 or v1's ``cpu`` controller, the directory
must hold a writable ``cgroup.procs``. Its weight (``cpu.weight`` / ``cpu.shares``) is the bots' share
under contention, taken together. Docker containers are cgroups already; the same group for them
would be a cgroup parent shared by the bot containers (``HostConfig.CgroupParent``), which the socket
proxy refuses by design (deploy/docker-socket-proxy/haproxy.cfg): not offered yet.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gordon_manager.runtimes.base import RuntimeConfigError

logger = logging.getLogger(__name__)

SETTING = "GORDON_MANAGER_BOT_CGROUP"


class CpuGroup:
    """A cgroup directory bot processes are moved into."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        procs = self.path / "cgroup.procs"
        if not procs.is_file():
            raise RuntimeConfigError(f"{SETTING}={self.path}: not a cgroup directory (it has no cgroup.procs)")
        if not os.access(procs, os.W_OK):
            raise RuntimeConfigError(f"{SETTING}={self.path}: cgroup.procs is not writable by this user "
                                     "(delegate the group to it, e.g. a systemd slice with Delegate=yes)")
        self._procs = procs

    def add(self, pid: int) -> bool:
        """Move process ``pid`` (all its threads) into the group; False (logged) when the kernel refuses.

        A bot the kernel will not move still runs, in the manager's group: scheduling is a matter of
        latency, trading is not stopped for it.
        """
        try:
            self._procs.write_text(f"{pid}\n")
        except OSError as exc:
            logger.error("bot process %s: not moved into cgroup %s: %s", pid, self.path, exc)
            return False
        return True

    def holds(self, pid: int) -> bool:
        """Whether ``pid`` is in the group now."""
        try:
            return str(pid) in self._procs.read_text().split()
        except OSError:
            return False
