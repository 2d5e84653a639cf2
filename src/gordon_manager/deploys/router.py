"""HTTP routes of green/blue bot deploys and service deploys: parse, authorise, call the service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from gordon_manager.deploys import service, service_deploys
from gordon_manager.deploys.schemas import (
    SERVICE_PATTERN,
    DeployPage,
    DeployPromote,
    DeployRead,
    DeployStatus,
    DivergencePage,
    DivergenceRead,
    ForcePromote,
    ServiceDeployCreate,
    ServiceDeployPage,
    ServiceDeployRead,
    ShadowPromote,
)
from gordon_manager.http.auth import Operator
from gordon_manager.http.openapi import Responses
from gordon_manager.http.pagination import Pagination
from gordon_manager.observability.logging import request_id_var

router = APIRouter(tags=["deploys"])

BotId = Annotated[int, Path(ge=1, le=2**62, description="Bot id.")]
DeployId = Annotated[int, Path(ge=1, le=2**62, description="Service deploy id.")]
_AUTH: Responses = {401: {"description": "Missing operator token"}, 403: {"description": "Wrong operator token"}}
_404: Responses = {404: {"description": "No such bot or deploy (problem+json)"}}
_409: Responses = {409: {"description": "Not allowed in the current state (problem+json, `currentState`)"}}


def _wake(loop: Any) -> None:
    if loop is not None:
        loop.wake()




@router.post("/bots/{bot_id}/deploy/promote", status_code=202, response_model=DeployRead,
             summary="Start a green/blue deploy",
             responses={**_AUTH, **_404, **_409, 422: {"description": "Invalid candidate spec"}})
async def start_deploy(request: Request, response: Response, bot_id: BotId, body: DeployPromote,
                       actor: Operator) -> DeployRead:
    """Run the candidate as a shadow bot on the live bot's inputs, compare, swap when it matches.

    409 when the bot is not running, is a shadow bot, or already has a deploy in progress.
    """
    ctx = request.app.state.ctx
    deploy = await service.start_deploy(ctx.pool, bot_id=bot_id, body=body, settings=ctx.settings, actor=actor,
                                        request_id=request_id_var.get())
    _wake(request.app.state.ctx.services.deploy_controller)
    response.headers["Location"] = f"/bots/{bot_id}/deploy/status"
    return deploy


@router.post("/bots/{bot_id}/deploy/abort", response_model=DeployRead, summary="Abort the deploy in progress",
             responses={**_AUTH, **_404, **_409})
async def abort_deploy(request: Request, bot_id: BotId, actor: Operator) -> DeployRead:
    """Abort the bot's deploy in progress and retire its candidate; the live bot is untouched."""
    return await service.abort_deploy(request.app.state.ctx.pool, bot_id=bot_id, actor=actor,
                                      request_id=request_id_var.get())


@router.get("/bots/{bot_id}/deploy/status", response_model=DeployStatus, summary="Deploy status", responses=_404)
async def deploy_status(request: Request, bot_id: BotId) -> DeployStatus:
    """The deploy in progress (else the latest): bars compared, matches, divergences, lease expiry."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return await service.deploy_status(conn, bot_id=bot_id)


@router.get("/bots/{bot_id}/deploys", response_model=DeployPage, summary="Deploy history",
            responses={**_404, 400: {"description": "Invalid cursor"}})
async def list_deploys(request: Request, bot_id: BotId, page: Pagination) -> DeployPage:
    """The bot's deploys, newest first; keyset-paginated."""
    rows = await service.deploys_page(request.app.state.ctx.pool, bot_id=bot_id,
                                      before_id=page.int_key(f"deploys:{bot_id}"), limit=page.limit)
    return DeployPage(items=[service.deploy_read(r) for r in rows],
                      next_cursor=page.next_cursor(f"deploys:{bot_id}", rows, lambda r: {"id": r["id"]}))


@router.get("/bots/{bot_id}/deploys/{deploy_id}/divergences", response_model=DivergencePage,
            summary="A deploy's divergences", responses={**_404, 400: {"description": "Invalid cursor"}})
async def list_divergences(request: Request, bot_id: BotId, deploy_id: Annotated[int, Path(ge=1, le=2**62)],
                           page: Pagination) -> DivergencePage:
    """Every action bar on which the candidate acted differently (both sides' actions and positions),
    oldest first; keyset-paginated."""
    scope = f"divergences:{deploy_id}"
    rows = await service.divergences_page(request.app.state.ctx.pool, bot_id=bot_id, deploy_id=deploy_id,
                                          after_id=page.int_key(scope), limit=page.limit)
    return DivergencePage(items=[DivergenceRead(**dict(r)) for r in rows],
                          next_cursor=page.next_cursor(scope, rows, lambda r: {"id": r["id"]}))


@router.post("/bots/{bot_id}/promote", response_model=DeployRead, summary="Promote a shadow bot",
             responses={**_AUTH, **_404, **_409, 422: {"description": "Shadow trades another market"}})
async def promote_shadow(request: Request, bot_id: BotId, actor: Operator,
                         body: ShadowPromote | None = None) -> DeployRead:
    """Make this shadow bot's spec its live bot's (the deploy swap, by hand) and retire the shadow.

    Only with evidence: its deploy is comparing with enough agreeing action bars; otherwise 409,
    unless the body says ``{"force": true}`` (recorded as the deploy's ``forcedBy``)."""
    return await service.promote_shadow(request.app.state.ctx.pool, shadow_id=bot_id, actor=actor,
                                        request_id=request_id_var.get(), force=bool(body and body.force))


@router.post("/bots/{bot_id}/deploys/{deploy_id}/promote", response_model=DeployRead,
             summary="Force-promote an inconclusive deploy",
             responses={**_AUTH, **_404, **_409, 422: {"description": "force is not true"}})
async def force_promote(request: Request, bot_id: BotId, deploy_id: Annotated[int, Path(ge=1, le=2**62)],
                        body: ForcePromote, actor: Operator) -> DeployRead:
    """Apply an inconclusive deploy's candidate spec to the live bot: only with ``{"force": true}``.

    Audited (``deploy-force-promote`` with the actor); the deploy becomes ``promoted`` with ``forcedBy``."""
    return await service.force_promote(request.app.state.ctx.pool, bot_id=bot_id, deploy_id=deploy_id,
                                       force=body.force, actor=actor, request_id=request_id_var.get())


@router.post("/deploys/service", status_code=202, response_model=ServiceDeployRead,
             summary="Trigger a service deploy",
             responses={**_AUTH, **_409, 422: {"description": "Image not allowed or invalid health check"},
                        503: {"description": "DOCKER_SOCKET_PROXY_URL not configured"}})
async def create_service_deploy(request: Request, response: Response, body: ServiceDeployCreate,
                                actor: Operator) -> ServiceDeployRead:
    """Start the new image next to the old container, swap when healthy; the old one keeps serving otherwise."""
    ctx = request.app.state.ctx
    deploy = await service_deploys.create_service_deploy(ctx.pool, body=body, settings=ctx.settings, actor=actor)
    _wake(request.app.state.ctx.services.service_deployer)
    response.headers["Location"] = f"/deploys/service/{deploy.id}/status"
    return deploy


@router.delete("/deploys/service/{deploy_id}/abort", response_model=ServiceDeployRead,
               summary="Abort a service deploy", responses={**_AUTH, **_404, **_409})
async def abort_service_deploy(request: Request, deploy_id: DeployId, actor: Operator) -> ServiceDeployRead:
    """Abort before the swap: the new container is removed, the old one keeps serving."""
    deploy = await service_deploys.abort_service_deploy(request.app.state.ctx.pool, deploy_id=deploy_id, actor=actor)
    _wake(request.app.state.ctx.services.service_deployer)
    return deploy


@router.get("/deploys/service/{deploy_id}/status", response_model=ServiceDeployRead,
            summary="Service deploy status", responses=_404)
async def service_deploy_status(request: Request, deploy_id: DeployId) -> ServiceDeployRead:
    """State, containers, health-check settings and the reason of a failure."""
    async with request.app.state.ctx.pool.acquire() as conn:
        return service_deploys.service_deploy_read(await service_deploys.get_service_deploy_or_raise(conn, deploy_id=deploy_id))


@router.get("/deploys/service", response_model=ServiceDeployPage, summary="Service deploy history",
            responses={400: {"description": "Invalid cursor"}})
async def list_service_deploys(request: Request, page: Pagination,
                               service_name: Annotated[str | None, Query(alias="service", pattern=SERVICE_PATTERN)]
                               = None) -> ServiceDeployPage:
    """Service deploys newest first (optionally of one service); keyset-paginated."""
    scope = f"service-deploys:{service_name or '*'}"
    rows = await service_deploys.service_deploys_page(request.app.state.ctx.pool, before_id=page.int_key(scope),
                                               service=service_name, limit=page.limit)
    return ServiceDeployPage(items=[service_deploys.service_deploy_read(r) for r in rows],
                             next_cursor=page.next_cursor(scope, rows, lambda r: {"id": r["id"]}))
