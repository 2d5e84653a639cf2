"""A controllable stand-in workload for reconciler tests: notes its lifecycle in a log file.

argv: LOG_DIR [run|crash]. SIGUSR1 = pause, SIGUSR2 = resume, SIGTERM = clean exit — the same
signal contract as the real bot runner.
"""

import os
import signal
import sys
from pathlib import Path

log = Path(sys.argv[1]) / f"bot-{os.environ['GORDON_BOT_ID']}.log"


def note(text: str) -> None:
    with log.open("a") as handle:
        handle.write(f"{os.getpid()} {text}\n")


def on_signal(signum, _frame):
    if signum == signal.SIGTERM:
        note("term")
        sys.exit(0)
    note("paused" if signum == signal.SIGUSR1 else "resumed")


for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
    signal.signal(sig, on_signal)
note(f"start paused={os.environ.get('GORDON_BOT_PAUSED')} version={os.environ.get('GORDON_BOT_CONFIG_VERSION')}")
if len(sys.argv) > 2 and sys.argv[2] == "crash":
    sys.exit(3)
while True:
    signal.pause()
