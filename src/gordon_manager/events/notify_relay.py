"""NotifyRelay: the plumbing shared by the manager's NOTIFY → NATS relays (hints, intents).

A relay subscribes its ``channels`` on the process's LISTEN connection (``db/listen.py``) and owns
one NATS connection, (re)made by ``run_once``. A subclass handles each notification in ``notified``;
the hooks ``on_nats`` (NATS connected), ``on_resumed`` (LISTEN (re)started or NATS connected again:
what was notified meanwhile was not relayed) and ``on_drop`` (forget per-connection state, before
the NATS connection is dropped) are optional.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import nats

from gordon_manager.db.listen import Listen
from gordon_manager.loops import LoopService

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0


class NotifyRelay(LoopService):
    """Hand each notification of ``channels`` to ``notified``; keep a NATS connection to relay it on."""

    channels: tuple[str, ...] = ()

    def __init__(self, *, listen: Listen, nats_url: str, interval: float = 2.0) -> None:
        super().__init__(interval=interval)
        self._listen = listen
        self._nats_url = nats_url
        self._nc: nats.NATS | None = None
        listen.subscribe(self.name, self.channels, self.notified, on_listening=self._on_listening)

    @property
    def listening(self) -> bool:
        """LISTEN is up and NATS connected: notifications are being relayed."""
        return self._listen.connected and self._nc is not None

    def notified(self, channel: str, payload: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def on_nats(self) -> None:
        """Called once NATS is connected (``self._nc``)."""

    async def on_resumed(self) -> None:
        """Called when LISTEN (re)started with NATS connected, or NATS connected with LISTEN up."""

    async def on_drop(self) -> None:
        """Called before the NATS connection is dropped."""

    async def _on_listening(self, _conn: asyncpg.Connection) -> None:
        if self._nc is not None:
            await self.on_resumed()

    async def _on_nats_error(self, exc: Exception) -> None:
        logger.debug("nats client error", extra={"relay": self.name, "error": f"{type(exc).__name__}: {exc}"})

    async def run_once(self) -> None:
        if self._nc is not None:
            return  # nats-py reconnects by itself
        try:
            # As in events/nats_consumer.py: with unlimited reconnects nats-py retries the *first*
            # connect forever (and a shutdown then waits on it); bound it, this loop retries.
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                self._nc = await nats.connect(self._nats_url, name=f"gordon-manager-{self.name}",
                                              connect_timeout=CONNECT_TIMEOUT_S, allow_reconnect=True,
                                              max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                              error_cb=self._on_nats_error)
            await self.on_nats()
            if self._listen.connected:
                await self.on_resumed()
        except Exception:
            await self._drop()
            raise

    async def _drop(self) -> None:
        await self.on_drop()
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                await asyncio.wait_for(nc.close(), timeout=2.0)
            except Exception:  # closing a broken client is best effort
                logger.debug("nats close failed", exc_info=True)

    async def teardown(self) -> None:
        await self._drop()
