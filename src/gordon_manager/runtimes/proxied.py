"""What the docker and swarm runtimes share: the proxy client, the payload policy, per-bot locks,
the ownership filter and shutdown."""

from __future__ import annotations

import asyncio

from gordon_manager.runtimes.base import LABEL_MANAGED, LABEL_RUNTIME
from gordon_manager.runtimes.docker_api import DockerAPI
from gordon_manager.runtimes.payload import PayloadPolicy


class ProxiedRuntime:
    """Base of runtimes that reach Docker only through docker-socket-proxy."""

    kind = "proxied"

    def __init__(
        self,
        *,
        proxy_url: str,
        policy: PayloadPolicy,
        timeout_s: float = 10.0,
        api_version: str | None = None,
        reconnect_delay_s: float = 0.5,
        api: DockerAPI | None = None,
    ) -> None:
        self._api = api or DockerAPI(base_url=proxy_url, timeout_s=timeout_s, api_version=api_version)
        self._policy = policy
        self._reconnect_delay_s = reconnect_delay_s
        self._locks: dict[int, asyncio.Lock] = {}
        self._closed = asyncio.Event()

    def _owned_filter(self, **extra: str) -> dict[str, list[str]]:
        """Label filter selecting only workloads this runtime kind owns (plus ``extra`` labels)."""
        labels = [f"{LABEL_MANAGED}=true", f"{LABEL_RUNTIME}={self.kind}"]
        labels += [f"{k}={v}" for k, v in extra.items()]
        return {"label": labels}

    def _lock(self, bot_id: int) -> asyncio.Lock:
        return self._locks.setdefault(bot_id, asyncio.Lock())

    async def close(self) -> None:
        """Stop event streams and close the HTTP client."""
        self._closed.set()
        await self._api.close()
