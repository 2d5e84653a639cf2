"""AppContext: what a running manager holds (settings, pool, health, auth, loops)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from gordon_manager.datadir import load_or_generate
from gordon_manager.health.state import HealthState
from gordon_manager.http.auth import OperatorAuth
from gordon_manager.http.cursor import CursorCodec
from gordon_manager.loops import Supervisor
from gordon_manager.settings import Settings


@dataclass
class AppContext:
    """Everything the routers and background services share in one process."""

    settings: Settings
    pool: asyncpg.Pool
    operator_auth: OperatorAuth
    cursors: CursorCodec
    health: HealthState = field(default_factory=HealthState)
    supervisor: Supervisor = field(default_factory=Supervisor)
    services: dict[str, Any] = field(default_factory=dict)

    def leads(self) -> bool:
        """The one leadership decision: this replica runs the singleton work (reconciler, deploy controller,
        backtest recovery, equity compactor, drift checker, run reaper, outbox retention) while it
        reconciles (``GORDON_MANAGER_RECONCILE_ENABLED``) and holds the leader lock. A replica with
        reconciling disabled runs none of it."""
        leader = self.services.get("leader")
        return bool(self.settings.reconcile_enabled and leader is not None and leader.is_leader)

    @property
    def database_url(self) -> str:
        assert self.settings.database_url is not None
        return self.settings.database_url.get_secret_value()


def load_or_generate_secret(configured: str | None, data_dir: Path, name: str) -> bytes:
    """A configured secret, or a random one persisted (0600) in the data dir so restarts keep it."""
    if configured:
        return configured.encode()
    return load_or_generate(data_dir, name)[0].encode()
