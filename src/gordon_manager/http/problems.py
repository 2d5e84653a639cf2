"""RFC 9457 problem+json responses for every error, with the request id; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from gordon_manager.errors import GordonError
from gordon_manager.http import media
from gordon_manager.http.casing import to_camel
from gordon_manager.observability import metrics
from gordon_manager.observability.logging import request_id_var

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 412: "Precondition failed",
           413: "Payload too large", 415: "Unsupported media type", 422: "Validation failed",
           428: "Precondition required", 429: "Too many requests", 500: "Internal error",
           502: "Upstream error", 503: "Service unavailable", 504: "Upstream timeout"}


def problem_response(status: int, *, slug: str, detail: str, title: str | None = None,
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    """Build one problem+json response."""
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    request_id = request_id_var.get()
    if request_id:
        body["requestId"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps(body, default=str), status_code=status, media_type=PROBLEM_MEDIA_TYPE,
                    headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    """A validation error's location as the contract spells it.

    Path and query parameters are camelCase (``bot_id`` → ``botId``; a query alias is already),
    headers as they are documented (``idempotency-key`` → ``Idempotency-Key``); a body location is
    pydantic's, already by alias, and keys inside it (a label's, a param's) stay as sent.
    """
    if len(loc) >= 2 and loc[0] in ("path", "query") and isinstance(loc[1], str):
        loc = (loc[0], to_camel(loc[1]), *loc[2:])
    elif len(loc) >= 2 and loc[0] == "header" and isinstance(loc[1], str):
        loc = (loc[0], "-".join(part.capitalize() for part in loc[1].split("-")), *loc[2:])
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else \
        [str(p) for p in loc]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def field_path(prefix: str, loc: tuple[Any, ...]) -> str:
    """``prefix.a.b`` for a nested model's error location, its snake_case names camelCased as on the wire
    (``execution`` + ``("taker_fee_bps",)`` → ``execution.takerFeeBps``)."""
    return ".".join([prefix, *(to_camel(p) if isinstance(p, str) else str(p) for p in loc)]).strip(".")


async def gordon_error_response(request: Request, exc: GordonError) -> Response:
    """The problem+json answer of a ``GordonError`` (the handler the app installs; the equity fast path
    answers its errors with it too)."""
    if exc.status >= 500:
        metrics.ERRORS.labels(component="http", kind=exc.type_slug).inc()
        logger.warning("request failed", extra={"error": exc.detail, "type": exc.type_slug})
    return problem_response(exc.status, slug=exc.type_slug, title=exc.title, detail=exc.detail,
                            instance=request.url.path, headers=dict(exc.headers) or None, **exc.extra)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return problem_response(400, slug="malformed-json", detail="The request body is not valid JSON.",
                                    instance=request.url.path)
        errors.append({"field": _field(tuple(err.get("loc", ()))), "message": err.get("msg", ""),
                       "type": err.get("type", "")})
    return problem_response(422, slug="validation", detail="The request has invalid fields.",
                            instance=request.url.path, errors=errors)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 405 and request.method == "OPTIONS":
        # OPTIONS on a path some route serves (RFC 9110 §9.3.7): what it allows, no body. A CORS
        # preflight from an allowed origin never gets here: CORSMiddleware answers it first.
        allowed = _allowed_methods(request)
        allow = {"Allow": allowed}
        if "PATCH" in allowed.split(", "):
            allow["Accept-Patch"] = ", ".join(media.PATCH_TYPES)
        return Response(status_code=204, headers=allow)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, f"http-{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.url.path}."
    headers: dict[str, str] | None = getattr(exc, "headers", None)
    if exc.status_code == 405:
        if detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}."
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return problem_response(exc.status_code, slug=slug, detail=detail, instance=request.url.path,
                            headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette's 405 names only the first route's), and
    OPTIONS, which every path that has a route answers."""
    routes = request.app.router.routes
    return ", ".join([*(method for method in _METHODS if method != "OPTIONS" and any(
        route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)), "OPTIONS"])


async def _unexpected(request: Request, exc: Exception) -> Response:
    metrics.ERRORS.labels(component="http", kind="unhandled").inc()
    logger.error("unhandled error", exc_info=exc)
    return problem_response(500, slug="internal",
                            detail="An unexpected error occurred; quote the request id when reporting it.",
                            instance=request.url.path)


# Connection-level failures of PostgreSQL, wherever a handler meets them: the database is down,
# restarting, gone or full. None is caused by what the client sent: 503, never 500.
DATABASE_DOWN = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.exceptions.AdminShutdownError,
                 asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.CrashShutdownError,
                 asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.InvalidCatalogNameError,
                 ConnectionError)


async def database_down_response(request: Request, exc: Exception) -> Response:
    """503 ``database-unavailable`` with ``Retry-After`` (installed for ``DATABASE_DOWN``; the fast path uses it too)."""
    metrics.ERRORS.labels(component="http", kind="database-unavailable").inc()
    logger.warning("database unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
    return problem_response(503, slug="database-unavailable", title="Database unavailable",
                            detail=f"The database is not available ({type(exc).__name__}); retry later.",
                            instance=request.url.path, headers={"Retry-After": "1"})


# -- the OpenAPI document says so ----------------------------------------------------------------------
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details: the body of every error of this API.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["/problems/validation"]},
        "title": {"type": "string", "examples": ["Validation failed"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "examples": [422]},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "requestId": {"type": "string", "description": "Also in the X-Request-ID header and the log line."},
        "errors": {"type": "array", "description": "Field errors of a validation problem.", "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}}}},
        # the members some problems add (RFC 9457 extension members)
        "currentVersion": {"type": "integer", "description": "412 stale `If-Match`: the bot's current version."},
        "currentState": {"type": "string", "description": "409 illegal transition: the state that forbids it."},
        "position": {"type": "object", "description": "409 a position in the way: what the bot holds.",
                     "required": ["mode", "symbol", "qty", "openOrders"], "properties": {
                         "mode": {"type": "string", "enum": ["paper", "shadow", "live"]}, "symbol": {"type": "string"},
                         "qty": {"type": "string", "format": "decimal", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"},
                         "openOrders": {"type": "integer"}}},
        "limit": {"type": "integer", "description": "413: the largest body accepted, in bytes."},
        "acceptedTypes": {"type": "array", "items": {"type": "string"},
                          "description": "415: the media types the operation accepts."},
        "peer": {"type": "string", "description": "502/503/504: the peer that failed or is not configured."},
        "upstreamStatus": {"type": "integer", "description": "502: the status the peer answered."},
    },
    # Other extension members a later problem type adds are JSON values a client may ignore (RFC 9457 §3.2).
    "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
}
_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def describe_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare every error response of ``spec`` as the problem+json it is (in place).

    FastAPI documents its own 422 as application/json ``HTTPValidationError`` and the routes' error
    responses without a body. An error status (not a range such as the risk proxy's pass-through
    ``4XX``) with no body, FastAPI's, or a problem+json media type without a schema gets the
    ``Problem`` schema; an operation reading a JSON body also documents 400 ``malformed-json``, and
    every write 415 ``unsupported-media-type`` (``http.media``).
    """
    for item in spec.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = {"description": "The body is not JSON (malformed-json)"}
            if method.upper() in media.WRITES and "415" not in responses:
                responses["415"] = {"description": "A body in another media type than "
                                                   f"{' or '.join(media.accepted(method.upper()))} "
                                                   "(unsupported-media-type)"}
            for status, response in responses.items():
                if not (status.isdigit() and int(status) >= 400):
                    continue
                content = response.get("content") or {}
                default = content.get("application/json", {}).get("schema", {}).get("$ref") == _FASTAPI_422
                if not content or default or content.get(PROBLEM_MEDIA_TYPE) == {}:
                    response["content"] = dict(_PROBLEM_CONTENT)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    if _FASTAPI_422.rsplit("/", 1)[1] not in str(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    return spec


def _install_openapi(app: FastAPI) -> None:
    built: list[dict[str, Any]] = []
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if not built:
            built.append(describe_problems(fastapi_openapi()))
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json (and document them so)."""
    _install_openapi(app)
    for kind in DATABASE_DOWN:
        app.add_exception_handler(kind, database_down_response)
    # Starlette types a handler's exception as Exception; these take the subclass they are registered for.
    app.add_exception_handler(GordonError, gordon_error_response)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
