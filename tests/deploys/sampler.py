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
    """Samples the processes of ``bot_id`` every ``interval`` seconds until stopped."""

    def __init__(self, bot_id: int, database: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.bot_id = bot_id
        self.database = database
        self.interval = interval
        self.samples: list[tuple[float, list[tuple[int, int]]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic(), bot_processes(self.database).get(self.bot_id, [])))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def max_concurrent(self) -> int:
        """The most processes of this bot seen at one instant."""
        return max((len(procs) for _t, procs in self.samples), default=0)

    def longest_gap(self) -> float:
        """Longest time with no process, between the first and the last sample that saw one."""
        seen = [t for t, procs in self.samples if procs]
        if not seen:
            return float("inf")
        longest, gap_start = 0.0, None
        for t, procs in self.samples:
            if t < seen[0] or t > seen[-1]:
                continue
            if not procs and gap_start is None:
                gap_start = t
            elif procs and gap_start is not None:
                longest, gap_start = max(longest, t - gap_start), None
        return longest

    def pids(self) -> list[int]:
        """Distinct pids in order of appearance."""
        out: list[int] = []
        for _t, procs in self.samples:
            for pid, _version in procs:
                if pid not in out:
                    out.append(pid)
        return out
