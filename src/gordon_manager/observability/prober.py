"""Stack-health prober: probes every configured peer on an interval and reports it in /healthz.

Peers and their probe (only the configured ones are probed; Postgres always is):

=====================  ==========================================  ===========================
peer                   probe                                       configured by
=====================  ==========================================  ===========================
postgres               ``SELECT 1`` through the pool               always
nats                   TCP connect, server must send its ``INFO``  GORDON_BUS_NATS_URL
docker_socket_proxy    ``GET /_ping`` → 200                        DOCKER_SOCKET_PROXY_URL
prometheus             ``GET /-/ready`` → 200                      GORDON_MANAGER__GORDON_PROMETHEUS_URL
alertmanager           ``GET /-/ready`` → 200                      GORDON_MANAGER__GORDON_ALERTMANAGER_URL
gordon_risk            ``GET /healthz`` → 200                      GORDON_MANAGER__GORDON_RISK_URL
=====================  ==========================================  ===========================

A peer that fails its probe raises ``peer_down`` (source = the peer's name) in the health
registry until a probe succeeds again; every probe counts
``stack_health_probes_total{peer,outcome}`` (ok | error | timeout) and every up/down change
``stack_health_transitions_total{peer,to}``. Peers are presumed up at start, so a peer found down
by the first probe counts as a transition to ``down``, one found up does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gordon_manager.errors import GordonError
from gordon_manager.health.state import HealthState
from gordon_manager.loops import LoopService
from gordon_manager.observability import metrics
from gordon_manager.proxies.upstream import PeerHttp, peer_http

logger = logging.getLogger(__name__)
NATS_DEFAULT_PORT = 4222


class ProbeFailed(Exception):
    """The peer answered, but not as a healthy peer does."""


@dataclass(frozen=True)
class Peer:
    """One probed peer: its name (the degraded source) and its probe (raises on failure)."""

    name: str
    probe: Callable[[], Awaitable[None]]


async def probe_postgres(pool: asyncpg.Pool) -> None:
    """The pool hands out a connection that answers ``SELECT 1``."""
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


async def probe_http(http: PeerHttp, peer: str, url: str) -> None:
    """``GET url`` answers 200."""
    response = await http.request(peer, "GET", url)
    if response.status_code != 200:
        raise ProbeFailed(f"GET {urlsplit(url).path or '/'} answered {response.status_code}")


def nats_servers(url: str) -> list[tuple[str, int]]:
    """(host, port) of each server in a NATS URL list (``nats://a:4222,nats://b:4222``)."""
    servers = []
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlsplit(part if "://" in part else f"nats://{part}")
        servers.append((parsed.hostname or "127.0.0.1", parsed.port or NATS_DEFAULT_PORT))
    return servers


async def probe_nats(url: str) -> None:
    """Some server of the list accepts a TCP connection and greets with ``INFO`` (NATS protocol)."""
    failures = []
    for host, port in nats_servers(url):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            failures.append(f"{host}:{port} {exc.strerror or type(exc).__name__}")
            continue
        try:
            greeting = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if greeting.startswith(b"INFO "):
            return
        failures.append(f"{host}:{port} did not greet with INFO")
    raise ProbeFailed("; ".join(failures) or "no NATS server in the URL")


def configured_peers(ctx: Any) -> list[Peer]:
    """The peers this manager is configured to talk to."""
    settings = ctx.settings
    http = peer_http(ctx)
    peers = [Peer("postgres", partial(probe_postgres, ctx.pool))]
    if settings.bus_nats_url:
        peers.append(Peer("nats", partial(probe_nats, settings.bus_nats_url)))
    urls = (("docker_socket_proxy", settings.docker_socket_proxy_url, "/_ping"),
            ("prometheus", settings.gordon_manager.gordon_prometheus_url, "/-/ready"),
            ("alertmanager", settings.gordon_manager.gordon_alertmanager_url, "/-/ready"),
            ("gordon_risk", settings.gordon_manager.gordon_risk_url, "/healthz"))
    for name, base, path in urls:
        if base and base.strip():
            peers.append(Peer(name, partial(probe_http, http, name, base.strip().rstrip("/") + path)))
    return peers


class StackProber(LoopService):
    """Probes the peers concurrently each interval; publishes ``checks.peers`` and ``peer_down``."""

    name = "stack_health"

    def __init__(self, *, peers: list[Peer], health: HealthState, interval: float, timeout_s: float) -> None:
        super().__init__(interval=interval)
        self.peers = peers
        self.health = health
        self.timeout_s = timeout_s
        self._up: dict[str, bool] = {}
        self._since: dict[str, str] = {}

    async def _probe(self, peer: Peer) -> tuple[str, str, float]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await peer.probe()
            outcome, detail = "ok", ""
        except TimeoutError:
            outcome, detail = "timeout", f"no answer within {self.timeout_s:g}s"
        except GordonError as exc:
            outcome = "timeout" if exc.status == 504 else "error"
            detail = exc.detail
        except Exception as exc:  # a probe must never take the prober down; the reason is the detail
            outcome, detail = "error", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return outcome, detail, round((time.perf_counter() - started) * 1000, 3)

    async def run_once(self) -> None:
        """Probe every peer once, concurrently."""
        results = await asyncio.gather(*(self._probe(p) for p in self.peers))
        report: dict[str, dict[str, Any]] = {}
        now = datetime.now(UTC).isoformat()
        for peer, (outcome, detail, latency_ms) in zip(self.peers, results, strict=True):
            up = outcome == "ok"
            metrics.STACK_HEALTH_PROBES.labels(peer=peer.name, outcome=outcome).inc()
            metrics.STACK_HEALTH_PEER_UP.labels(peer=peer.name).set(1 if up else 0)
            was_up = self._up.get(peer.name, True)
            if up != was_up:
                metrics.STACK_HEALTH_TRANSITIONS.labels(peer=peer.name, to="up" if up else "down").inc()
                (logger.info if up else logger.warning)(
                    "peer is up" if up else "peer is down", extra={"peer": peer.name, "detail": detail})
            if up != self._up.get(peer.name):
                self._since[peer.name] = now
            self._up[peer.name] = up
            if not up:
                self.health.set_degraded("peer_down", peer.name, detail)
            elif not was_up:
                # Clear only what this prober raised: another component (the NATS consumer, the
                # /healthz database check) may report a deeper problem with the same peer.
                self.health.clear_degraded("peer_down", peer.name)
            report[peer.name] = {"ok": up, "outcome": outcome, "detail": detail, "latencyMs": latency_ms,
                                 "since": self._since[peer.name], "checkedAt": now}
        self.health.set_check("peers", **report)
