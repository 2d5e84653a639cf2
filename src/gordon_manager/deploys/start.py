"""Wiring: the deploy controller and the service deploy runner, in the reconciling replica only."""

from __future__ import annotations

import logging

from gordon_manager.context import AppContext
from gordon_manager.deploys.controller import DeployController
from gordon_manager.deploys.service_deploys import ServiceDeployRunner, allowed_images
from gordon_manager.runtimes.payload import PayloadPolicy
from gordon_manager.runtimes.services import ServiceContainers

logger = logging.getLogger(__name__)


def controller_interval(lease_ttl_s: float) -> float:
    """Tick often enough to renew the shortest lease several times before it lapses."""
    return max(0.1, min(0.5, lease_ttl_s / 4))


async def start(ctx: AppContext) -> None:
    """Start the loops; they act only while this replica holds the reconciler's leader lock."""
    leader = ctx.services.leader
    if leader is None:
        if ctx.settings.reconcile_enabled:  # reconcile did not start first
            raise RuntimeError("deploys need the reconciler's leader, which is not there (reconcile failed to "
                               "start, or starts after deploys in app.service_starters)")
        # Reconciling is off here: another replica (the leader) drives deploys, and nothing would
        # converge a swap in this one anyway.
        return
    controller = DeployController(pool=ctx.pool, leader=leader,
                                  interval=controller_interval(ctx.settings.deploy_lease_ttl_s))
    ctx.services.deploy_controller = controller
    ctx.supervisor.start(controller)
    if ctx.settings.docker_socket_proxy_url:
        containers = ServiceContainers(proxy_url=ctx.settings.docker_socket_proxy_url,
                                       policy=PayloadPolicy(allowed_images=allowed_images(ctx.settings)),
                                       timeout_s=ctx.settings.http_timeout_s)
        runner = ServiceDeployRunner(pool=ctx.pool, containers=containers, leader=leader)
        ctx.services.service_containers = containers
        ctx.services.service_deployer = runner
        ctx.supervisor.start(runner)
