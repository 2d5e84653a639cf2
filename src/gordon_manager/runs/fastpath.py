"""The console's hot read, a page of ``GET /runs/{run_id}/equity``, answered below FastAPI's routing.

On the 2-core box, FastAPI's route matching, dependency solving and exception middlewares cost
about as much CPU per request as building the 70 KB page itself. This ASGI middleware answers the
one common case directly: a GET of that path whose query validates (the same ``EquityQuery``),
without ``points``. It calls the same service function as the route, so the bytes are the route's
bytes, and a ``GordonError`` it raises (a missing run, a bad cursor, a reversed range) is answered
with the application's own problem+json (``http.problems.gordon_error_response``) — the read is not
run a second time. Everything else goes on to the application unchanged: other paths and methods,
``points``, input that does not validate, and unexpected errors.

The route has no dependency the fast path would skip: ``tests/runs/test_fastpath.py`` pins the route's
parameters and dependencies, so adding one (say, an auth check) fails there until the fast path does it
too.

The route stays declared in FastAPI, so there is still one OpenAPI description and one error path.
The middleware sits inside ``RequestContextMiddleware``, which gives this answer the same request id,
access-log line and request metrics (it sets ``scope["route"]`` to the declared route).
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gordon_manager.errors import GordonError
from gordon_manager.http.problems import DATABASE_DOWN, database_down_response, gordon_error_response
from gordon_manager.observability import metrics
from gordon_manager.runs import service
from gordon_manager.runs.router import router as runs_router
from gordon_manager.runs.schemas import EquityQuery

ROUTE_PATH = "/runs/{run_id}/equity"
ENDPOINT = "runs.equity"
_PATH = re.compile(r"/runs/([1-9][0-9]{0,18})/equity")
_MAX_ID = 2**62
_HEADERS = [(b"content-type", b"application/json")]


class EquityPageFastPath:
    """Answer well-formed, successful equity page reads directly; pass everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route = next(r for r in runs_router.routes if getattr(r, "path", None) == ROUTE_PATH)
        self._reads = metrics.BFF_READS.labels(endpoint=ENDPOINT)
        self._duration = metrics.BFF_READ_DURATION.labels(endpoint=ENDPOINT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _PATH.fullmatch(scope["path"])
            if match is not None:
                try:
                    body = await self._answer(scope, int(match[1]))
                except GordonError as exc:
                    scope["route"] = self._route
                    await (await gordon_error_response(Request(scope), exc))(scope, receive, send)
                    return
                except DATABASE_DOWN as exc:
                    scope["route"] = self._route
                    await (await database_down_response(Request(scope), exc))(scope, receive, send)
                    return
                if body is not None:
                    scope["route"] = self._route
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, run_id: int) -> bytes | None:
        """The page's body, or None to let the application answer; raises the read's ``GordonError``."""
        if run_id > _MAX_ID:
            return None
        # As Starlette reads a query string: latin-1, blank values kept, the last repeated key wins.
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        if "points" in params:
            return None
        try:
            query = EquityQuery.model_validate(params)
        except ValidationError:
            return None
        started = time.perf_counter()
        self._reads.inc()  # like the route's bff_read: every read the handler runs, answered or refused
        try:
            return await service.equity_page(scope["app"].state.ctx, run_id=run_id, query=query)
        finally:
            self._duration.observe(time.perf_counter() - started)
