"""gordon-risk proxy: resume and emergency flatten (safety-critical).

Flow of one call: operator token (constant time; missing 401, wrong 403) → body validated →
forwarded to gordon-risk with the manager's own forward token → gordon-risk's status and JSON
returned unchanged. Every call, refused ones included, writes one ``trading.operator_audit`` row
and flatten calls count ``operator_flatten_requests_total{outcome}``.

Outcomes: ok (2xx), rejected (gordon-risk said 4xx: passed through), upstream_error (unreachable,
5xx, refused our forward token, non-JSON answer → 502), timeout (504), unauthorized (401),
forbidden (403), invalid (400/422 body), not_configured (503).

The audit is written after the command is forwarded and a failed audit write is logged and
counted (``gordon_errors_total{component="risk_proxy",kind="audit_write"}``) but never blocks,
delays beyond its own timeout, or undoes a flatten: stopping the bleeding comes first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import orjson
from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gordon_manager.errors import (
    ClientError,
    Forbidden,
    GordonError,
    PeerError,
    PeerTimeout,
    Unauthorized,
    Unprocessable,
)
from gordon_manager.http.auth import OPERATOR_DEPENDENCY, require_operator
from gordon_manager.observability import metrics
from gordon_manager.observability.logging import request_id_var
from gordon_manager.proxies import repo
from gordon_manager.proxies.errors import MalformedBody, PeerNotConfigured
from gordon_manager.proxies.schemas import RiskCommand
from gordon_manager.proxies.upstream import peer_http, require_url

logger = logging.getLogger(__name__)
PEER = "gordon-risk"
URL_ENV = "GORDON_MANAGER__GORDON_RISK_URL"
TOKEN_ENV = "GORDON_MANAGER__GORDON_RISK_OPERATOR_TOKEN"
FORWARD_HEADER = "X-Operator-Token"
AUDIT_HEADER = "X-Audit-Id"
AUDIT_TIMEOUT_S = 5.0
ANSWER_AUDIT_LIMIT = 4096  # bytes of gordon-risk's answer kept in the audit row
ANONYMOUS = "anonymous"
OUTCOMES = ("ok", "rejected", "upstream_error", "timeout", "unauthorized", "forbidden", "invalid", "not_configured")


@dataclass(frozen=True)
class RiskAction:
    """One proxied gordon-risk command."""

    name: str
    path: str
    counted: bool  # counted in operator_flatten_requests_total


RESUME = RiskAction(name="risk_resume", path="/risk/resume", counted=False)
FLATTEN = RiskAction(name="emergency_flatten", path="/risk/emergency-flatten", counted=True)


async def record(ctx: Any, *, action: RiskAction, actor: str, outcome: str, status_code: int | None,
                 target: str | None, detail: dict[str, Any]) -> int | None:
    """Count (flatten) and audit one call; returns the audit id, None when the write failed."""
    if action.counted:
        metrics.OPERATOR_FLATTEN_REQUESTS.labels(outcome=outcome).inc()
    log = logger.warning if outcome != "ok" else logger.info
    log("operator command", extra={"action": action.name, "outcome": outcome, "status": status_code})
    try:
        async with asyncio.timeout(AUDIT_TIMEOUT_S):
            async with ctx.pool.acquire() as conn:
                return await repo.insert_operator_audit(
                    conn, actor=actor, action=action.name, target=target, outcome=outcome,
                    status_code=status_code, detail=detail, request_id=request_id_var.get())
    except Exception as exc:  # the audit must never block or undo a safety command
        metrics.ERRORS.labels(component="risk_proxy", kind="audit_write").inc()
        logger.error("operator audit write failed", exc_info=exc,
                     extra={"action": action.name, "outcome": outcome, "status": status_code})
        return None


def operator_for(action: RiskAction):
    """The Operator dependency, plus auditing and counting of refused tokens for ``action``."""

    async def dependency(request: Request) -> str:
        ctx = request.app.state.ctx
        try:
            return await require_operator(request)
        except Unauthorized as exc:
            await record(ctx, action=action, actor=ANONYMOUS, outcome="unauthorized", status_code=exc.status,
                         target=None, detail={"error": exc.detail})
            raise
        except Forbidden as exc:
            await record(ctx, action=action, actor=ANONYMOUS, outcome="forbidden", status_code=exc.status,
                         target=None, detail={"error": exc.detail})
            raise

    dependency.__name__ = f"operator_for_{action.name}"
    setattr(dependency, OPERATOR_DEPENDENCY, True)
    return dependency


ResumeOperator = Annotated[str, Depends(operator_for(RESUME))]
FlattenOperator = Annotated[str, Depends(operator_for(FLATTEN))]


async def parse_command(request: Request) -> RiskCommand:
    """The validated body: 400 when not JSON, 422 (with field errors) when invalid."""
    raw = await request.body()
    try:
        data = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise MalformedBody("The request body is not valid JSON.") from exc
    if data is None:
        raise Unprocessable("A JSON body with `reason` is required.",
                            extra={"errors": [{"field": "reason", "message": "Field required", "type": "missing"}]})
    try:
        return RiskCommand.model_validate(data)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        raise Unprocessable("The request has invalid fields.", extra={"errors": errors}) from exc


def _target(settings: Any) -> tuple[str, str]:
    peers = settings.gordon_manager
    url = require_url(peers.gordon_risk_url, peer=PEER, env=URL_ENV)
    token = peers.gordon_risk_operator_token.get_secret_value() if peers.gordon_risk_operator_token else ""
    if not token:
        raise PeerNotConfigured(f"{PEER} forward token is not configured: set {TOKEN_ENV}", extra={"peer": PEER})
    return url, token


def _upstream_json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def classify(response: httpx.Response, *, action: RiskAction) -> tuple[str, Response]:
    """gordon-risk's answer as (outcome, response to return); PeerError when it is not an answer."""
    status = response.status_code
    extra = {"peer": PEER, "upstreamStatus": status}
    if 200 <= status < 300:
        if status == 204 or not response.content.strip():
            return "ok", Response(status_code=status)
        if _upstream_json(response) is None:
            raise PeerError(f"{PEER} answered {status} with a body that is not JSON; the command may have been "
                            "applied: check gordon-risk", extra=extra)
        return "ok", Response(response.content, status_code=status, media_type="application/json")
    if status in (401, 403):
        raise PeerError(f"{PEER} refused the manager's forward token ({status}): check {TOKEN_ENV}", extra=extra)
    if status in (404, 405):
        raise PeerError(f"{PEER} has no POST {action.path} ({status}): check {URL_ENV}", extra=extra)
    if 400 <= status < 500:
        body = _upstream_json(response)
        if body is None:
            content = orjson.dumps({"detail": response.text[:500]})
            return "rejected", Response(content, status_code=status, media_type="application/json")
        media = "application/problem+json" if "problem+json" in response.headers.get("content-type", "") \
            else "application/json"
        return "rejected", Response(response.content, status_code=status, media_type=media)
    body = _upstream_json(response)
    raise PeerError(f"{PEER} failed with {status}", extra={**extra, "upstream": body if body is not None
                                                           else response.text[:500]})


async def forward(ctx: Any, request: Request, *, action: RiskAction, actor: str) -> Response:
    """Validate, forward, audit and count one command; returns gordon-risk's answer."""
    started = time.perf_counter()
    try:
        command = await parse_command(request)
    except ClientError as exc:
        invalid = {"error": exc.detail, "errors": exc.extra.get("errors")}
        await record(ctx, action=action, actor=actor, outcome="invalid", status_code=exc.status, target=None,
                     detail={k: v for k, v in invalid.items() if v is not None})
        raise
    detail: dict[str, Any] = {"reason": command.reason, "scope": command.scope}
    try:
        url, token = _target(ctx.settings)
        headers = {FORWARD_HEADER: token}
        request_id = request_id_var.get()
        if request_id:
            headers["X-Request-ID"] = request_id
        response = await peer_http(ctx).request(PEER, "POST", f"{url}{action.path}",
                                                json=command.model_dump(exclude_none=True), headers=headers)
        outcome, answer = classify(response, action=action)
    except GordonError as exc:
        outcome = ("not_configured" if isinstance(exc, PeerNotConfigured) else
                   "timeout" if isinstance(exc, PeerTimeout) else "upstream_error")
        detail.update(error=exc.detail, durationMs=_ms(started))
        if "upstreamStatus" in exc.extra:
            detail["upstreamStatus"] = exc.extra["upstreamStatus"]
        await record(ctx, action=action, actor=actor, outcome=outcome, status_code=exc.status,
                     target=command.scope, detail=detail)
        raise
    detail.update(upstreamStatus=response.status_code, durationMs=_ms(started))
    if len(response.content) <= ANSWER_AUDIT_LIMIT:
        detail["answer"] = _upstream_json(response)
    audit_id = await record(ctx, action=action, actor=actor, outcome=outcome, status_code=answer.status_code,
                            target=command.scope, detail=detail)
    if audit_id is not None:
        answer.headers[AUDIT_HEADER] = str(audit_id)
    return answer


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
