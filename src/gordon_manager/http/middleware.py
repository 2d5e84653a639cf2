"""Request id, access log and request metrics, as one pure ASGI middleware (no BaseHTTPMiddleware cost)."""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gordon_manager.http.problems import problem_response
from gordon_manager.observability import metrics
from gordon_manager.observability.logging import request_id_var

logger = logging.getLogger("gordon_manager.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
UNMATCHED_ROUTE = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/bots/{bot_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Give each request an id (X-Request-ID in and out), count and time it by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.match(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            # Handled here (not by Starlette's outermost ServerErrorMiddleware) so the 500 problem
            # and its log line carry this request's id.
            if scope["type"] != "http" or started:
                raise
            metrics.ERRORS.labels(component="http", kind="unhandled").inc()
            logging.getLogger("gordon_manager.http").error("unhandled error", exc_info=exc)
            response = problem_response(500, slug="internal", instance=scope["path"],
                                        detail="An unexpected error occurred; quote the request id when reporting it.")
            await response(scope, receive, send_wrapper)
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - start
                route = route_template(scope)
                method = scope["method"]
                counter, histogram = _children(method, route, status)
                counter.inc()
                histogram.observe(elapsed)
                logger.info("request", extra={"method": method, "route": route, "path": scope["path"],
                                              "status": status, "duration_ms": round(elapsed * 1000, 3)})
            request_id_var.reset(token)


_CHILDREN: dict[tuple[str, str, int], tuple] = {}


def _children(method: str, route: str, status: int) -> tuple:
    """The request counter and duration histogram children of one (method, route, status), resolved once.

    Routes are templates, so the keys are bounded like the metric's own label sets.
    """
    key = (method, route, status)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = (metrics.REQUESTS.labels(method=method, route=route, status=str(status)),
                                  metrics.REQUEST_DURATION.labels(method=method, route=route))
    return found


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app ``body`` (already read, or withheld as b"") once, then the client's."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return value.decode("ascii")
            except UnicodeDecodeError:
                return None
    return None
