"""Refuse text PostgreSQL cannot store, before any handler runs: 422 naming the field.

PostgreSQL ``text`` and ``jsonb`` hold neither NUL (U+0000) nor lone UTF-16 surrogates
(U+D800–U+DFFF), and asyncpg cannot even encode the latter: such a string in a label, a name or an
image used to reach the database and come back as a 500. JSON can only carry them as ``\\u``
escapes, so the raw body is searched for those escapes (cheap, no parsing); only a body that has
one is decoded, to find the first offending field and name it. A NUL in a query parameter (any
method) is refused the same way, naming the parameter.

Before that, a write body that is not JSON (``http.media``: another or no ``Content-Type``) is a 415
naming the media types accepted. The edge (``http.edge``) runs first: a write without a valid
operator token reaches this guard with an empty body, so it is its route's 401/403, never a 415.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gordon_manager.http import media
from gordon_manager.http.auth import raw_header
from gordon_manager.http.middleware import replay_body
from gordon_manager.http.problems import problem_response

_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD = re.compile("[\x00\ud800-\udfff]")
_WRITES = media.WRITES


def _find(value: Any, path: str) -> tuple[str, str] | None:
    """(field path, what is wrong) of the first string (or key) with a NUL or a lone surrogate."""
    if isinstance(value, str):
        bad = _BAD.search(value)
        if bad is None:
            return None
        return path or "body", "contains a NUL character" if bad.group() == "\x00" else \
            "contains a lone UTF-16 surrogate (not valid Unicode text)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find(key, f"{path}.{key}" if path else str(key)) if _BAD.search(key) else None
            found = found or _find(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, f"{path}[{index}]")
            if found:
                return found
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, field: str, problem: str) -> None:
    response = problem_response(422, slug="validation", instance=scope["path"], detail=f"{field} {problem}",
                                errors=[{"field": field, "message": problem}])
    await response(scope, receive, send)


def _routed(scope: Scope) -> bool:
    """Whether a route serves this method on this path (else the router's 404/405 is the better answer)."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    return any(route.matches(scope)[0] == Match.FULL for route in routes)


async def _unsupported(scope: Scope, receive: Receive, send: Send) -> None:
    accepted = media.accepted(scope["method"])
    sent = media.media_type(raw_header(scope, "content-type"))
    detail = (f"The request body must be {' or '.join(accepted)}; "
              + (f"it is {sent}." if sent else "it has no Content-Type."))
    headers = {"Accept-Patch": ", ".join(media.PATCH_TYPES)} if scope["method"] == "PATCH" else None
    response = problem_response(415, slug="unsupported-media-type", instance=scope["path"], detail=detail,
                                headers=headers, acceptedTypes=list(accepted))
    await response(scope, receive, send)


class TextGuardMiddleware:
    """Pure ASGI: buffers write bodies, lets clean ones through unchanged, answers 422 for the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:  # a query value reaches SQL as text as well
            for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in key or "\x00" in value:
                    field = key.replace("\x00", "\\u0000")
                    await _refuse(scope, receive, send, field, "contains a NUL character")
                    return
        if scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to do
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and not media.acceptable(scope["method"], raw_header(scope, "content-type")) and _routed(scope):
            await _unsupported(scope, receive, send)
            return
        if _SUSPECT.search(body):
            try:
                found = _find(json.loads(body), "")
            except ValueError:
                found = None  # not JSON: the route's own validation answers
            if found is not None:
                field, problem = found
                field = _BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", field)  # a key can be the culprit
                await _refuse(scope, receive, send, field, problem)
                return
        await self.app(scope, replay_body(body, receive), send)
