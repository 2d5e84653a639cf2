"""The one outbound HTTP client the proxies and the stack prober share.

Every call has a total deadline (``settings.http_timeout_s``) on top of httpx's per-phase
timeouts, so a peer that trickles bytes cannot hold a request open; httpx errors are translated
into ``PeerError`` (502) / ``PeerTimeout`` (504) naming the peer, so no library error escapes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from gordon_manager.errors import PeerError, PeerTimeout
from gordon_manager.proxies.errors import PeerNotConfigured
from gordon_manager.version import __version__


class PeerHttp:
    """An httpx.AsyncClient with a total deadline per call and translated errors."""

    def __init__(self, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), transport=transport,
                                         headers={"User-Agent": f"gordon-manager/{__version__}"})

    async def request(self, peer: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request to ``peer``; PeerTimeout past the deadline, PeerError when unreachable."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._client.request(method, url, **kwargs)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise PeerTimeout(f"{peer} did not answer within {self.timeout_s:g}s",
                              extra={"peer": peer}) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PeerError(f"{peer} is unreachable at {_origin(url)} ({_reason(exc)})",
                            extra={"peer": peer}) from exc

    async def close(self) -> None:
        """Close the connection pool (called at shutdown by the app)."""
        await self._client.aclose()


def peer_http(ctx: Any) -> PeerHttp:
    """The app's shared PeerHttp, created on first use and closed with the app."""
    client = ctx.services.peer_http
    if client is None:
        client = ctx.services.peer_http = PeerHttp(timeout_s=ctx.settings.http_timeout_s)
    return client


def require_url(value: str | None, *, peer: str, env: str) -> str:
    """The peer's base URL without a trailing slash, or 503 saying which variable to set."""
    if not value or not value.strip():
        raise PeerNotConfigured(f"{peer} is not configured: set {env} to its base URL", extra={"peer": peer})
    return value.strip().rstrip("/")


def json_body(response: httpx.Response, *, peer: str) -> Any:
    """The response's JSON, or PeerError when the peer answered something else."""
    try:
        return response.json()
    except ValueError as exc:
        raise PeerError(f"{peer} answered {response.status_code} with a body that is not JSON",
                        extra={"peer": peer}) from exc


def _origin(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.port else f"{parsed.scheme}://{parsed.host}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
