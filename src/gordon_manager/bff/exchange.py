"""GET /exchange/ping: is the exchange's public REST API reachable, and how fast.

Calls ``{GORDON_MANAGER_EXCHANGE_URL}/api/v3/ping`` (public, no keys) with the outbound timeout.
An unreachable exchange is a normal answer (``reachable: false`` and the reason), never an error:
the console shows it, nothing is broken on our side.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from gordon_manager.bff.schemas import ExchangePing
from gordon_manager.context import AppContext

PING_PATH = "/api/v3/ping"


def _client(ctx: AppContext) -> httpx.AsyncClient:
    """The shared client (closed at shutdown through ``ctx.services``)."""
    shared = ctx.services.exchange_client
    if shared is None:
        client = httpx.AsyncClient(timeout=ctx.settings.http_timeout_s, follow_redirects=False,
                                   headers={"User-Agent": "gordon-manager"})
        ctx.services.exchange_client = _Closing(client)
        return client
    return shared.client


class _Closing:
    """Adapter giving the client the ``close()`` the shutdown path calls."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def close(self) -> None:
        await self.client.aclose()


async def ping(ctx: AppContext) -> ExchangePing:
    """One ping of the exchange; every failure becomes ``reachable: false`` with a reason."""
    url = ctx.settings.exchange_url.rstrip("/") + PING_PATH
    started = time.perf_counter()
    status_code = None
    try:
        response = await _client(ctx).get(url)
        status_code = response.status_code
        reason = None if response.status_code == 200 else f"HTTP {response.status_code}"
    except httpx.TimeoutException:
        reason = f"timed out after {ctx.settings.http_timeout_s:g} s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency = (time.perf_counter() - started) * 1000.0
    reachable = reason is None
    return ExchangePing(reachable=reachable, latency_ms=round(latency, 3) if status_code is not None else None,
                        status_code=status_code, reason=reason, url=url, checked_at=datetime.now(UTC))
