"""The `gordon-manager` command line (the top layer: it imports the domains, none imports it).

``main`` (serve, migrate, bot, openapi, asyncapi), ``backtest``, ``sweep``, ``data``; ``common`` holds
what they share (one line failures, settings, the database for a command, option parsing).
"""

import signal as _signal
import sys as _sys

if len(_sys.argv) > 1 and _sys.argv[1] == "bot":
    # First thing a bot process does, before any other import: a pause/resume signal that arrives
    # before its handlers exist must not kill it (the default action). Ignored, it is corrected from
    # the declared desired state at the bot's next heartbeat.
    _signal.signal(_signal.SIGUSR1, _signal.SIG_IGN)
    _signal.signal(_signal.SIGUSR2, _signal.SIG_IGN)

from gordon_manager.cli.common import fail, prepare_database  # noqa: E402
from gordon_manager.cli.main import (  # noqa: E402
    app,
    main,
    process_bots_stopper,
    render_openapi,
    server_limits,
)

__all__ = ["app", "fail", "main", "prepare_database", "process_bots_stopper", "render_openapi", "server_limits"]
