"""Routes of the proxies: metrics summary, firing alerts, gordon-risk resume / emergency flatten."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from gordon_manager.bots import service as bots_service
from gordon_manager.observability import metrics
from gordon_manager.proxies import alertmanager, prometheus, risk
from gordon_manager.proxies.schemas import FiringAlerts, MetricsSummary, RiskAnswer, RiskCommand
from gordon_manager.proxies.upstream import peer_http, require_url

router = APIRouter()

BotId = Annotated[int, Path(ge=1, le=2**62, description="Bot id.")]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {}}}


_NOT_CONFIGURED = _problem("The peer's URL is not configured")
_RISK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "gordon-risk's answer, unchanged (its status code and JSON); `X-Audit-Id` names the audit row"},
    400: _problem("Body is not JSON"),
    401: _problem("Missing operator token"),
    403: _problem("Wrong operator token"),
    "4XX": {"description": "gordon-risk rejected the command: its status and JSON, passed through",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RiskAnswer"}}}},
    422: _problem("Invalid body (field errors)"),
    502: _problem("gordon-risk unreachable, failed, or refused the manager's forward token"),
    503: _problem("gordon-risk URL or forward token not configured"),
    504: _problem("gordon-risk did not answer in time"),
}
_RISK_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": RiskCommand.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")}}}}


@router.get("/bff/bots/{bot_id}/metrics-summary", response_model=MetricsSummary, tags=["bff"],
            summary="Per-bot Prometheus rollup (six queries)",
            responses={404: _problem("No such bot"), 503: _NOT_CONFIGURED})
async def metrics_summary(request: Request, bot_id: BotId) -> MetricsSummary:
    """Six PromQL queries run concurrently; one that fails or times out is named in `missing`."""
    ctx = request.app.state.ctx
    started = time.perf_counter()
    base = require_url(ctx.settings.gordon_manager.gordon_prometheus_url, peer=prometheus.PEER, env=prometheus.ENV)
    async with ctx.pool.acquire() as conn:
        await bots_service.require_live_bot(conn, bot_id=bot_id)
    summary = await prometheus.metrics_summary(prometheus.PrometheusClient(peer_http(ctx), base), bot_id=bot_id)
    _count_read("metrics_summary", started)
    return summary


@router.get("/bff/alerts/firing", response_model=FiringAlerts, tags=["bff"], summary="Firing AlertManager alerts",
            responses={502: _problem("AlertManager unreachable or failed"), 503: _NOT_CONFIGURED,
                       504: _problem("AlertManager did not answer in time")})
async def alerts_firing(request: Request) -> FiringAlerts:
    """Active alerts (not silenced, not inhibited), newest first; labels and annotations verbatim."""
    ctx = request.app.state.ctx
    started = time.perf_counter()
    base = require_url(ctx.settings.gordon_manager.gordon_alertmanager_url, peer=alertmanager.PEER,
                       env=alertmanager.ENV)
    alerts = await alertmanager.AlertmanagerClient(peer_http(ctx), base).firing()
    _count_read("alerts_firing", started)
    return FiringAlerts(items=alerts)


@router.post("/bff/risk/resume", response_model=RiskAnswer, tags=["risk"], summary="Resume trading (gordon-risk)",
             responses=_RISK_RESPONSES, openapi_extra=_RISK_BODY)
async def risk_resume(request: Request, actor: risk.ResumeOperator) -> Response:
    """Forward a resume to gordon-risk (operator token required; audited)."""
    return await risk.forward(request.app.state.ctx, request, action=risk.RESUME, actor=actor)


@router.post("/risk/emergency-flatten", response_model=RiskAnswer, tags=["risk"],
             summary="Emergency flatten (gordon-risk)", responses=_RISK_RESPONSES, openapi_extra=_RISK_BODY)
async def emergency_flatten(request: Request, actor: risk.FlattenOperator) -> Response:
    """Forward an emergency flatten to gordon-risk (operator token required; audited and counted)."""
    return await risk.forward(request.app.state.ctx, request, action=risk.FLATTEN, actor=actor)


# The seed's invariants name the flatten `POST /bff/emergency-flatten` (its endpoint table says
# `/risk/emergency-flatten`): both are served by the one handler above, so the alias is token-gated,
# audited and counted alike.
router.add_api_route(
    "/bff/emergency-flatten", emergency_flatten, methods=["POST"], response_model=RiskAnswer, tags=["risk"],
    name="bff_emergency_flatten", summary="Emergency flatten (gordon-risk), BFF alias",
    description="Alias of `POST /risk/emergency-flatten` (the path the seed's invariants use): the same handler, "
                "so the same operator token, audit row (`X-Audit-Id`) and "
                "`gordon_manager_operator_flatten_requests_total` count.",
    responses=_RISK_RESPONSES, openapi_extra={**_RISK_BODY, "x-alias-of": "POST /risk/emergency-flatten"})


def _count_read(endpoint: str, started: float) -> None:
    metrics.BFF_READS.labels(endpoint=endpoint).inc()
    metrics.BFF_READ_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)
