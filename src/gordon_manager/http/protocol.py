"""uvicorn's httptools protocol with two limits it lacks: the request head's size and its read time.

uvicorn accepts a head of any size (a 1 MB header, 20,000 headers) and waits forever for one that
is sent slowly (slowloris) or never. ``GuardedHttpProtocol`` counts the bytes received while a
request's head is incomplete and answers 431 past ``max_header_bytes``; and it gives a connection
``read_timeout_s`` to complete each head (from its first byte, or from the connection's opening),
answering 408 after that. Both close the connection; both are counted in
``gordon_manager_refusals_total``. The body's limits are the edge middleware's (http/edge.py).

The limits are class attributes set by ``configure(settings)`` before the server starts (uvicorn
builds one protocol instance per connection from the class).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gordon_manager.http.problems import PROBLEM_MEDIA_TYPE, problem_response
from gordon_manager.observability import metrics
from gordon_manager.settings import Settings


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol + head size and head read-time limits."""

    max_header_bytes: int = 32_768
    read_timeout_s: float = 10.0

    @classmethod
    def configure(cls, settings: Settings) -> type[GuardedHttpProtocol]:
        cls.max_header_bytes = settings.max_header_bytes
        cls.read_timeout_s = settings.request_read_timeout_s
        return cls

    # uvicorn types the argument as the base transport; an HTTP server's is an asyncio.Transport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.read_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        waiting = self._waiting_for_head()
        if waiting:
            self._arm_head_timer()
            self._head_bytes += len(data)
        cycle = self.cycle
        super().data_received(data)
        if self.transport.is_closing() or self.parser is None or self.transport.get_protocol() is not self:
            self._disarm_head_timer()  # closed, or upgraded to a WebSocket: no longer an HTTP head to wait for
            return
        if self.cycle is not cycle or not self._waiting_for_head():
            # A head completed in this chunk: its request runs; the next head gets a fresh budget.
            self._head_bytes = 0
            self._disarm_head_timer()
        elif waiting and self._head_bytes > self.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large", "head_size",
                         f"The request head exceeds {self.max_header_bytes} bytes.")

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            # uvicorn's keep-alive timeout closes an idle connection; a head that starts arriving is ours.
            self._head_bytes = 0

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._waiting_for_head():
            return
        if self._head_bytes == 0 and self.cycle is not None:
            return  # idle between requests: uvicorn's keep-alive timeout owns that
        self._refuse(408, "Request Timeout", "read_timeout",
                     f"The request head did not arrive within {self.read_timeout_s:g} s.")

    def _refuse(self, status: int, phrase: str, reason: str, detail: str) -> None:
        metrics.REFUSALS.labels(reason=reason).inc()
        body = problem_response(status, slug=reason.replace("_", "-"), title=phrase, detail=detail).body
        head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: {PROBLEM_MEDIA_TYPE}\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        self.transport.write(head + body)
        self.transport.close()
