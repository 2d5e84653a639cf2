"""Test-only fault injection: die at a named step of a deploy, as a crashed manager would.

``GORDON_MANAGER_FAILPOINTS`` (comma-separated step names, unset in production) makes
``failpoint(name)`` end the process at once with exit code 70: no cleanup, no commit of an open
transaction, no lease release: exactly what a kill -9 or a power cut leaves behind. The deploy
tests run a real ``gordon-manager serve`` with one step armed, then restart it without, and check
the deploy recovered to a consistent state.

Steps: ``deploy.after_create`` (deploy and candidate committed), ``controller.after_shadowing``,
``controller.after_compare`` (a compare batch committed), ``swap.after_swapping`` (state swapping
committed, swap not begun), ``swap.before_commit`` (inside the swap transaction), ``swap.after_commit``.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

ENV = "GORDON_MANAGER_FAILPOINTS"
EXIT_CODE = 70
STEPS = ("deploy.after_create", "controller.after_shadowing", "controller.after_compare", "swap.after_swapping",
         "swap.before_commit", "swap.after_commit")


def armed(name: str) -> bool:
    """True when the environment names this step."""
    return name in {part.strip() for part in os.environ.get(ENV, "").split(",")}


def failpoint(name: str) -> None:
    """Exit the process immediately (code 70) when ``name`` is armed; a no-op otherwise."""
    if armed(name):
        logger.critical("failpoint reached: exiting", extra={"failpoint": name})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CODE)
