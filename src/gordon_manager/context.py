"""AppContext: what a running manager holds (settings, pool, health, auth, loops)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from gordon_manager.datadir import load_or_generate
from gordon_manager.health.state import HealthState
from gordon_manager.http.auth import OperatorAuth
from gordon_manager.http.cursor import CursorCodec
from gordon_manager.loops import Supervisor
from gordon_manager.settings import Settings

if TYPE_CHECKING:  # the services' types only: their modules import this one
    from gordon_manager.backtests.sweep_service import SweepRunner
    from gordon_manager.backtests.worker import BacktestRunner
    from gordon_manager.bff.exchange import _Closing
    from gordon_manager.db.listen import Listen
    from gordon_manager.db.readpool import ReadPool
    from gordon_manager.deploys.controller import DeployController
    from gordon_manager.deploys.service_deploys import ServiceDeployRunner
    from gordon_manager.events.service import EventsService
    from gordon_manager.observability.file_sd import FileSdWriter
    from gordon_manager.observability.prober import StackProber
    from gordon_manager.portfolio.drift import DriftChecker
    from gordon_manager.proxies.upstream import PeerHttp
    from gordon_manager.reconcile.leader import LeaderElector
    from gordon_manager.reconcile.reconciler import Reconciler
    from gordon_manager.reconcile.start import CredentialedRuntime
    from gordon_manager.runs.batch import PageBatcher
    from gordon_manager.runs.compactor import EquityCompactor
    from gordon_manager.runs.reaper import RunReaper
    from gordon_manager.runtimes.services import ServiceContainers
    from gordon_manager.workers import BackgroundLock


@dataclass
class Services:
    """What one manager process runs, typed; ``None``: not running here. Set by each domain's ``start(ctx)``
    (their order: ``app.service_starters``), or on first use for the shared clients and pools; closed at
    shutdown (``close()`` where a service has one)."""

    # background loops (started in this order; the deploy controller needs the reconciler's leader)
    runtime: CredentialedRuntime | None = None
    leader: LeaderElector | None = None
    reconciler: Reconciler | None = None
    deploy_controller: DeployController | None = None
    service_containers: ServiceContainers | None = None
    service_deployer: ServiceDeployRunner | None = None
    file_sd: FileSdWriter | None = None
    stack_prober: StackProber | None = None
    portfolio_drift: DriftChecker | None = None
    events: EventsService | None = None
    backtests: BacktestRunner | None = None
    sweeps: SweepRunner | None = None
    compactor: EquityCompactor | None = None
    reaper: RunReaper | None = None
    background_lock: BackgroundLock | None = None
    # shared clients and pools, made on first use
    listen: Listen | None = None
    peer_http: PeerHttp | None = None
    exchange_client: _Closing | None = None
    read_pool: ReadPool | None = None
    page_batcher: PageBatcher | None = None

    def running(self) -> list[object]:
        """Every service set, in declaration order (what shutdown closes)."""
        return [value for value in (getattr(self, f.name) for f in fields(self)) if value is not None]


@dataclass
class AppContext:
    """Everything the routers and background services share in one process."""

    settings: Settings
    pool: asyncpg.Pool
    operator_auth: OperatorAuth
    cursors: CursorCodec
    health: HealthState = field(default_factory=HealthState)
    supervisor: Supervisor = field(default_factory=Supervisor)
    services: Services = field(default_factory=Services)

    def leads(self) -> bool:
        """The one leadership decision: this replica runs the singleton work (reconciler, deploy controller,
        backtest recovery, equity compactor, drift checker, run reaper, outbox retention) while it
        reconciles (``GORDON_MANAGER_RECONCILE_ENABLED``) and holds the leader lock. A replica with
        reconciling disabled runs none of it."""
        leader = self.services.leader
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
