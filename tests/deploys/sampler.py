"""Watch the real bot processes of given bot ids, to check "never two live, never none for long"."""

from __future__ import annotations

import threading
import time

import psutil


def bot_processes(database: str) -> dict[int, list[tuple[int, int]]]:
    """{bot id: [(pid, config version)]} of the running `gordon-manager bot` processes of ``database``
    (bot ids repeat across databases: other test sessions on this host run bots too)."""
    found: dict[int, list[tuple[int, int]]] = {}
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
            if proc.info["status"] == psutil.STATUS_ZOMBIE or "gordon_manager.cli" not in cmd or cmd[-1:] != ["bot"]:
                continue
            env = proc.environ()
            if database not in env.get("GORDON_DATABASE_URL", ""):
                continue
            bot_id = int(env["GORDON_BOT_ID"])
            found.setdefault(bot_id, []).append((proc.pid, int(env.get("GORDON_BOT_CONFIG_VERSION", "0"))))
        except (psutil.Error, KeyError, ValueError):
            continue
    return found


class BotSampler(threading.Thread):
    """Samples the processes of ``bot_id`` every ``interval`` seconds until stopped.

    Besides the samples it keeps, per pid, the kernel's start time of the process and the wall time
    it was last seen alive, so that a gap between two processes is measured from the old one last
    seen to the new one's exact start: the sampler's own speed (slow under load) does not widen it.
    """

    def __init__(self, bot_id: int, database: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.bot_id = bot_id
        self.database = database
        self.interval = interval
        self.samples: list[tuple[float, list[tuple[int, int]]]] = []
        self.created: dict[int, float] = {}  # pid -> process start (wall clock, from the kernel)
        self.last_seen: dict[int, float] = {}  # pid -> wall time it was last seen alive
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            procs = bot_processes(self.database).get(self.bot_id, [])
            for pid, _version in procs:
                try:
                    created = psutil.Process(pid).create_time()
                except psutil.Error:
                    continue
                seen = time.time()
                self.created.setdefault(pid, created)
                self.last_seen[pid] = seen
            self.samples.append((time.monotonic(), procs))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def max_concurrent(self) -> int:
        """The most processes of this bot seen at one instant."""
        return max((len(procs) for _t, procs in self.samples), default=0)

    def longest_gap(self) -> float:
        """Longest time without a process between two successive ones: from the old one last seen
        alive to the new one's start (an upper bound of the real gap; 0 when they overlapped)."""
        order = self.pids()
        if not order:
            return float("inf")
        longest = 0.0
        for old, new in zip(order, order[1:], strict=False):
            if old in self.last_seen and new in self.created:
                longest = max(longest, self.created[new] - self.last_seen[old])
        return longest

    def pids(self) -> list[int]:
        """Distinct pids in order of appearance."""
        out: list[int] = []
        for _t, procs in self.samples:
            for pid, _version in procs:
                if pid not in out:
                    out.append(pid)
        return out
