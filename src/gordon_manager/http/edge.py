"""The edge: what every request and /ws handshake passes before any work is done for it.

In order, each refusal a problem+json and a count in ``gordon_manager_refusals_total{reason}``:

1. **Host** against the allowed hosts (DNS rebinding): 421.
2. **Origin**: a browser request from another origin that is not allowed: 403, before a WebSocket
   upgrade too. Same-origin requests (``Origin`` naming the ``Host`` asked for) and clients that
   send no ``Origin`` (curl, services) pass. CORS headers for the allowed origins are added by
   Starlette's CORSMiddleware inside this one.
3. **Header count**: 431 (the head's byte size is bounded earlier, by http/protocol.py).
4. **Tokens**: a write's operator token is verified *before its body is read*; a write without a
   valid one reaches its route with an empty body, and the route's ``Operator`` dependency answers
   401/403 (the risk proxy audits that refusal). Reads and /ws need the read token when one is set.
5. **Body**: a declared length over the limit is 413 without reading; a chunked body is read up to
   the limit (413 past it) within the read timeout (408), then replayed to the app.
6. **/ws caps**: connections per process and per client address (503 / 429 before the upgrade).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import Counter
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from gordon_manager.errors import ConfigurationError, Forbidden, GordonError, Unauthorized
from gordon_manager.http.auth import HEADER, READ_HEADER, STATE_KEY, OperatorAuth, TokenSet, raw_header
from gordon_manager.http.console import is_public as is_console_path
from gordon_manager.http.docs import ASSET_PATHS as DOCS_ASSET_PATHS
from gordon_manager.http.middleware import replay_body
from gordon_manager.http.problems import problem_response
from gordon_manager.observability import metrics
from gordon_manager.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Open without the read token: probes, Prometheus' scrape, and the API descriptions (OpenAPI with its pages and
# their assets, AsyncAPI); the console's pages and assets too (http/console.py: `/`, `/ui/...`).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.yaml", "/docs", "/redoc",
                          *DOCS_ASSET_PATHS})
WS_PROTOCOL = "gordon.v1"
WS_TOKEN_PREFIX = "gordon.read-token."
WS_SUBPROTOCOL_KEY = "gordon_ws_subprotocol"  # scope["state"]: the subprotocol the session accepts with
LOCAL_NAMES = ("localhost", "*.localhost", "localhost.localdomain")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def refuse(reason: str) -> None:
    metrics.REFUSALS.labels(reason=reason).inc()


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def host_name(value: str) -> str:
    """``Host`` header → lower-case name without port, brackets or trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """The names this service answers to; IP literals always pass (a rebinding attack needs a name)."""

    def __init__(self, configured: str, *, bind_host: str) -> None:
        names = _split_list(configured)
        if not names:
            names = [*LOCAL_NAMES, socket.gethostname()]
            if bind_host and not _is_ip(bind_host):
                names.append(bind_host)
        self.any = "*" in names
        self.exact = frozenset(n.lower().rstrip(".") for n in names if not n.startswith("*."))
        self.suffixes = tuple(n[1:].lower() for n in names if n.startswith("*."))

    def allows(self, header: bytes | None) -> bool:
        if self.any or header is None:  # HTTP/1.0 without Host: not a browser, nothing to rebind
            return True
        try:
            name = host_name(header.decode("ascii"))
        except UnicodeDecodeError:
            return False
        return name in self.exact or _is_ip(name) or (bool(self.suffixes) and name.endswith(self.suffixes))


def normalise_origin(value: str) -> str:
    """``scheme://host[:port]`` in canonical form (lower case, default port dropped); ValueError otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(value)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS[parts.scheme] else "")


class OriginPolicy:
    """Same origin always; other origins only when listed in GORDON_MANAGER_CORS_ORIGINS."""

    def __init__(self, configured: str) -> None:
        allowed = []
        for item in _split_list(configured):
            try:
                allowed.append(normalise_origin(item))
            except ValueError:
                raise ConfigurationError(
                    f"GORDON_MANAGER_CORS_ORIGINS: {item!r} is not an origin (scheme://host[:port], http or https)"
                ) from None
        self.allowed = tuple(dict.fromkeys(allowed))

    def allows(self, origin: bytes, host: bytes | None) -> bool:
        try:
            text = origin.decode("ascii")
            canonical = normalise_origin(text)
        except (UnicodeDecodeError, ValueError):
            return False  # "null" (sandboxed pages, file://) and garbage
        if canonical in self.allowed:
            return True
        if host is None:
            return False
        # Same origin: the page was served by this Host. The scheme is not compared: behind a TLS
        # terminator the manager sees http for an https page, and both are this server anyway.
        netloc = canonical.split("://", 1)[1]
        scheme = canonical.split("://", 1)[0]
        try:
            asked = host.decode("ascii").lower().rstrip(".")
        except UnicodeDecodeError:
            return False
        return netloc == asked or (f"{netloc}:{_DEFAULT_PORTS[scheme]}" == asked)


class WsCaps:
    """Open /ws connections of this process, in total and per client address."""

    def __init__(self, *, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open: Counter[str] = Counter()
        self.count = 0

    def admit(self, client: str) -> str | None:
        """None when admitted (then ``release`` once), else the refusal reason."""
        if self.count >= self.total:
            return "ws_connections"
        if self.open[client] >= self.per_client:
            return "ws_connections_per_client"
        self.count += 1
        self.open[client] += 1
        return None

    def release(self, client: str) -> None:
        self.count -= 1
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


def _subprotocols(scope: Scope) -> list[str]:
    return list(scope.get("subprotocols") or ())


def _read_token_from_ws(scope: Scope) -> bytes | None:
    for proto in _subprotocols(scope):
        if proto.startswith(WS_TOKEN_PREFIX):
            return proto[len(WS_TOKEN_PREFIX):].encode("utf-8")
    return None


def chosen_subprotocol(scope: Scope) -> str | None:
    """The subprotocol to accept with: gordon.v1 when offered, else none of the token ones."""
    offered = _subprotocols(scope)
    if WS_PROTOCOL in offered:
        return WS_PROTOCOL
    return next((p for p in offered if not p.startswith(WS_TOKEN_PREFIX)), None)


class EdgeGuard:
    """Pure ASGI middleware applying the checks above (configured once from the settings)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, operator_auth: OperatorAuth | None = None) -> None:
        self.app = app
        self.hosts = HostPolicy(settings.allowed_hosts, bind_host=settings.host_port[0])
        self.origins = OriginPolicy(settings.cors_origins)
        self.readers = (TokenSet({"reader": settings.read_token.get_secret_value()}, kind="read")
                        if settings.read_token else None)
        self.max_headers = settings.max_headers
        self.max_body = settings.max_body_bytes
        self.read_timeout_s = settings.request_read_timeout_s
        self.ws = WsCaps(total=settings.ws_max_connections, per_client=settings.ws_max_connections_per_client)
        self._operators = operator_auth

    def operators(self, scope: Scope) -> OperatorAuth:
        if self._operators is None:
            self._operators = scope["app"].state.operator_auth
        return self._operators

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self._check_common(scope)
        if refusal is None and kind == "websocket":
            refusal = self._check_read(scope, ws=True)
        elif refusal is None and scope["method"] not in SAFE_METHODS:
            self._verify_operator(scope)
        elif refusal is None and scope["method"] != "OPTIONS":
            refusal = self._check_read(scope, ws=False)
        if refusal is not None:
            await _send_problem(scope, receive, send, refusal)
            return
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
        else:
            await self._write(scope, receive, send)

    # -- checks ----------------------------------------------------------------------------------
    def _check_common(self, scope: Scope) -> GordonError | None:
        host = raw_header(scope, "host")
        if not self.hosts.allows(host):
            refuse("host")
            return MisdirectedHost("This server does not answer to that Host name (see GORDON_MANAGER_ALLOWED_HOSTS).")
        origin = raw_header(scope, "origin")
        if origin is not None and not self.origins.allows(origin, host):
            refuse("origin")
            return OriginNotAllowed("Requests from this origin are not allowed (see GORDON_MANAGER_CORS_ORIGINS).")
        if len(scope.get("headers", ())) > self.max_headers:
            refuse("headers")
            return HeadersTooLarge(f"A request may carry at most {self.max_headers} header fields.")
        return None

    def _check_read(self, scope: Scope, *, ws: bool) -> GordonError | None:
        if self.readers is None or scope["path"] in PUBLIC_PATHS or is_console_path(scope["path"]):
            return None
        presented = raw_header(scope, READ_HEADER) or (_read_token_from_ws(scope) if ws else None)
        operator = raw_header(scope, HEADER)
        if presented is None and operator is None:
            refuse("read_token")
            return ReadTokenRequired("Reads need the X-Read-Token header (or, on /ws, the subprotocol "
                                     f"{WS_TOKEN_PREFIX}<token>).")
        if presented is not None and self.readers.match(presented) is not None:
            return None
        if operator is not None and self.operators(scope).match(operator) is not None:
            return None
        refuse("read_token")
        return Forbidden("The read token is not valid.")

    def _verify_operator(self, scope: Scope) -> None:
        try:
            verdict: str | GordonError = self.operators(scope).check(raw_header(scope, HEADER))
        except (Unauthorized, Forbidden) as exc:
            refuse("operator_token")
            verdict = exc
        scope.setdefault("state", {})[STATE_KEY] = verdict

    # -- writes ----------------------------------------------------------------------------------
    async def _write(self, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(scope["state"].get(STATE_KEY), GordonError):
            # Not authorised: the body is never read; the route's Operator dependency answers.
            await self.app(scope, replay_body(b"", receive), send)
            return
        declared = raw_header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            refuse("body_size")
            await _send_problem(scope, receive, send, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        try:
            while more:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    refuse("body_size")
                    await _send_problem(scope, receive, send, self._too_large(), close=True)
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
        except TimeoutError:
            refuse("read_timeout")
            await _send_problem(scope, receive, send, RequestTimeout(
                f"The request body did not arrive within {self.read_timeout_s:g} s."), close=True)
            return
        await self.app(scope, replay_body(b"".join(chunks), receive), send)

    def _too_large(self) -> GordonError:
        return BodyTooLarge(f"The request body exceeds {self.max_body} bytes.", extra={"limit": self.max_body})

    # -- /ws -------------------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = (scope.get("client") or ("?", 0))[0]
        reason = self.ws.admit(client)
        if reason is not None:
            refuse(reason)
            error: GordonError = (WsBusy("The server holds its maximum of live-event connections; retry later.")
                                  if reason == "ws_connections" else
                                  WsTooMany("This client address holds its maximum of live-event connections."))
            await _send_problem(scope, receive, send, error)
            return
        scope.setdefault("state", {})[WS_SUBPROTOCOL_KEY] = chosen_subprotocol(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            self.ws.release(client)


async def _send_problem(scope: Scope, receive: Receive, send: Send, error: GordonError, *, close: bool = False) -> None:
    headers = {**error.headers, **({"Connection": "close"} if close else {})}
    response = problem_response(error.status, slug=error.type_slug, title=error.title, detail=error.detail,
                                instance=scope.get("path"), headers=headers or None, **error.extra)
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": error.type_slug})
        return
    await response(scope, receive, send)


class MisdirectedHost(GordonError):
    status = 421
    type_slug = "host-not-allowed"
    title = "Misdirected request"


class OriginNotAllowed(GordonError):
    status = 403
    type_slug = "origin-not-allowed"
    title = "Origin not allowed"


class HeadersTooLarge(GordonError):
    status = 431
    type_slug = "headers-too-large"
    title = "Request header fields too large"


class ReadTokenRequired(GordonError):
    status = 401
    type_slug = "read-token-required"
    title = "Unauthorized"


class BodyTooLarge(GordonError):
    status = 413
    type_slug = "body-too-large"
    title = "Payload too large"


class RequestTimeout(GordonError):
    status = 408
    type_slug = "request-timeout"
    title = "Request timeout"


class WsBusy(GordonError):
    headers = {"Retry-After": "5"}
    status = 503
    type_slug = "ws-connections"
    title = "Too many live-event connections"


class WsTooMany(GordonError):
    status = 429
    type_slug = "ws-connections-per-client"
    title = "Too many live-event connections"


# Response headers a browser on an allowed origin may read.
EXPOSED_HEADERS = ("ETag", "X-Request-ID", "Location", "Idempotent-Replayed", "X-Audit-Id", "Retry-After")
