"""Wiring: build the runtime, leader elector, reconciler and its wake-ups for one manager process."""

from __future__ import annotations

import logging
import shlex
import socket
import sys
from collections.abc import Callable
from typing import Any

import asyncpg

from gordon_manager.botrunner import credentials
from gordon_manager.botrunner.labels import resource_limits
from gordon_manager.context import AppContext
from gordon_manager.db.listen import listen
from gordon_manager.db.urls import with_user
from gordon_manager.errors import ConfigurationError
from gordon_manager.reconcile.leader import LeaderElector
from gordon_manager.reconcile.policy import Thresholds
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.reconcile.wakeups import LeaderWatcher, RuntimeEventWatcher, wake_on_config_changes
from gordon_manager.runtimes import create_runtime
from gordon_manager.runtimes.base import (
    Observed,
    Runtime,
    RuntimeConfigError,
    RuntimeUnavailable,
    WorkloadSpec,
)
from gordon_manager.settings import Settings

logger = logging.getLogger(__name__)


def bot_database_url(settings: Settings) -> str:
    """The URL bots log in with: configured, or the service's URL with the gordon_bot role."""
    if settings.bot_database_url is not None:
        return settings.bot_database_url.get_secret_value()
    assert settings.database_url is not None
    return with_user(settings.database_url.get_secret_value(), "gordon_bot")


def bot_command(settings: Settings, runtime_kind: str) -> tuple[str, ...]:
    """argv of a bot; for local processes `gordon-manager` resolves to this interpreter's package."""
    argv = shlex.split(settings.bot_command)
    if runtime_kind == "process" and argv and argv[0] == "gordon-manager":
        argv = [sys.executable, "-m", "gordon_manager.cli", *argv[1:]]
    return tuple(argv)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_spec_builder(settings: Settings, runtime_kind: str) -> Callable[[Any], WorkloadSpec]:
    """A function turning a fleet row into the WorkloadSpec the runtime starts.

    Each bot gets its own ``GORDON_BOT_TOKEN`` (HMAC of its id under the data dir's token key, the
    same after a manager restart); ``CredentialedRuntime`` registers it before the workload starts.
    A container (docker/swarm) serves /metrics on ``0.0.0.0:GORDON_MANAGER_BOT_METRICS_PORT`` (its
    address on the bots' network is the file-SD target) and gets CPU and memory limits: its
    ``resources.*`` labels, else the settings' defaults.
    """
    command = bot_command(settings, runtime_kind)
    db_url = bot_database_url(settings)
    nats_url = settings.bot_nats_url or settings.bus_nats_url
    token_key = credentials.load_key(settings.data_dir)
    contained = runtime_kind != "process"

    def build(row: Any) -> WorkloadSpec:
        cpu = memory_mb = None
        if contained:
            port = settings.bot_metrics_port
            try:
                cpu, memory_mb = resource_limits(_labels(row), cpu=settings.bot_cpu_limit,
                                                 memory_mb=settings.bot_memory_limit_mb)
            except ConfigurationError as exc:
                raise RuntimeConfigError(f"bot {row['id']}: {exc}") from exc
        else:
            port = row["metrics_port"] or _free_port()
        env = {
            "GORDON_BOT_ID": str(row["id"]),
            "GORDON_BOT_CONFIG_VERSION": str(row["spec_version"]),
            "GORDON_DATABASE_URL": db_url,
            credentials.TOKEN_ENV: credentials.bot_token(token_key, row["id"]),
            "GORDON_BOT_METRICS_PORT": str(port),
            "GORDON_BOT_PAUSED": "1" if row["desired_state"] == "paused" else "0",
        }
        if contained:
            env["GORDON_BOT_METRICS_ADDR"] = "0.0.0.0"  # scraped on its network address, not loopback
        if nats_url:
            env["GORDON_BUS_NATS_URL"] = nats_url
        return WorkloadSpec(bot_id=row["id"], config_version=row["spec_version"], name=f"gordon-bot-{row['id']}",
                            image=row["image"], command=command, env=env, cpu_limit=cpu, memory_limit_mb=memory_mb)

    return build


def _labels(row: Any) -> dict[str, str] | None:
    try:
        labels: dict[str, str] | None = row["labels"]
        return labels
    except (KeyError, IndexError):
        return None


class CredentialedRuntime:
    """The runtime, with each bot's token registered (its sha256, ``trading.bot_credentials``) before
    the workload starts: a bot can log in as itself, and only as itself (migration 0019).

    When the registered token changes (this manager's key is not the one that started the bot before:
    a lost data dir, another replica), a workload left from before still carries the old token in its
    environment, and docker and swarm would restart it as it is: it is removed, so the start creates
    it afresh with the new one.
    """

    def __init__(self, inner: Runtime, pool: asyncpg.Pool) -> None:
        self.inner = inner
        self.pool = pool
        self.kind = inner.kind

    async def start(self, spec: WorkloadSpec) -> Observed:
        token = spec.env.get(credentials.TOKEN_ENV)
        if token:
            try:
                replaced = await credentials.register(self.pool, bot_id=spec.bot_id, token=token)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise RuntimeUnavailable(f"cannot register bot {spec.bot_id}'s database credential: {exc}") from exc
            if replaced:
                logger.info("bot %s: its token changed (another token key): recreating its workload", spec.bot_id)
                await self.inner.remove(spec.bot_id)
        return await self.inner.start(spec)

    def __getattr__(self, name: str) -> Any:  # observe, stop, remove, signal, events, ping, close…
        return getattr(self.inner, name)


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(backoff_base_s=settings.backoff_base_s, backoff_max_s=settings.backoff_max_s,
                      backoff_reset_s=settings.backoff_reset_s, quarantine_failures=settings.quarantine_failures,
                      quarantine_window_s=settings.quarantine_window_s)


async def start(ctx: AppContext) -> None:
    """Start the leader elector, the reconciler and what wakes it (unless disabled for this replica)."""
    settings = ctx.settings
    if not settings.reconcile_enabled:
        return
    runtime = create_runtime(
        kind=settings.runtime, state_dir=settings.data_dir / "process-runtime",
        proxy_url=settings.docker_socket_proxy_url,
        allowed_images=[p.strip() for p in settings.allowed_images.split(",") if p.strip()],
        network=settings.bot_network, stop_timeout_s=settings.bot_stop_timeout_s, timeout_s=settings.http_timeout_s,
        bot_cgroup=settings.bot_cgroup)
    runtime = CredentialedRuntime(runtime, ctx.pool)
    leader = LeaderElector(url=ctx.database_url, connect_timeout_s=settings.db_connect_timeout_s)
    reconciler = Reconciler(pool=ctx.pool, runtime=runtime, leader=leader,
                            spec_builder=make_spec_builder(settings, runtime.kind), thresholds=thresholds(settings),
                            interval=settings.reconcile_interval_s)
    ctx.services.runtime = runtime
    ctx.services.reconciler = reconciler
    ctx.services.leader = leader
    for loop in (leader, reconciler, LeaderWatcher(reconciler=reconciler),
                 RuntimeEventWatcher(runtime=runtime, reconciler=reconciler)):
        ctx.supervisor.start(loop)
    wake_on_config_changes(listen(ctx), reconciler)
