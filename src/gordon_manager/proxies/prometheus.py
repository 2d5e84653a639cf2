"""Prometheus client and the per-bot metrics summary (six PromQL queries, run concurrently).

The bot runner exposes these metrics on its /metrics; Prometheus adds the target labels the
manager's file-SD writes (``bot_id``, ``name``, ``strategy``, ``symbol``, ``mode``,
``config_version``), so the bot must not set a ``bot_id`` label itself:

==================================  =======  ==================================================
metric                              type     meaning
==================================  =======  ==================================================
gordon_bot_decisions_total          counter  strategy decisions taken (one per bar, hold included)
gordon_bot_orders_total             counter  orders placed (paper: simulated orders; live: new-order intents)
gordon_bot_errors_total             counter  errors the bot survived (any labels; summed)
gordon_bot_equity                   gauge    mark-to-market equity in quote currency
gordon_bot_last_bar_timestamp_seconds gauge  unix time at which the bot last processed a bar
==================================  =======  ==================================================

Why these six: ``up`` says whether we can see the bot at all; decisions/min says the strategy is
being driven; orders/min says it acts; errors/min says it is unwell; equity is what the console
shows next to the bot; the last-bar age is the bot's heartbeat (stale while the process lives
means a stuck data feed or loop).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import Any

from gordon_manager.errors import PeerError, PeerTimeout
from gordon_manager.proxies.schemas import MetricsSummary, MissingQuery
from gordon_manager.proxies.upstream import PeerHttp, json_body

logger = logging.getLogger(__name__)
PEER = "prometheus"
ENV = "GORDON_MANAGER__GORDON_PROMETHEUS_URL"

BOT_METRICS: tuple[str, ...] = (
    "gordon_bot_decisions_total",
    "gordon_bot_orders_total",
    "gordon_bot_errors_total",
    "gordon_bot_equity",
    "gordon_bot_last_bar_timestamp_seconds",
)

# Summary field -> PromQL template; {bot_id} is the int path parameter, never free text. Rates are
# per second over 5 minutes, times 60. A labelled counter has no series until its first increment,
# so while the bot is scraped (up == 1) a missing counter means "none yet": `or on() (0 * up)`.
SUMMARY_QUERIES: dict[str, str] = {
    "up": 'max(up{{bot_id="{bot_id}"}})',
    "decisions_per_min": '(60 * sum(rate(gordon_bot_decisions_total{{bot_id="{bot_id}"}}[5m])))'
                         ' or on() (0 * max(up{{bot_id="{bot_id}"}} == 1))',
    "orders_per_min": '(60 * sum(rate(gordon_bot_orders_total{{bot_id="{bot_id}"}}[5m])))'
                      ' or on() (0 * max(up{{bot_id="{bot_id}"}} == 1))',
    "errors_per_min": '(60 * sum(rate(gordon_bot_errors_total{{bot_id="{bot_id}"}}[5m])))'
                      ' or on() (0 * max(up{{bot_id="{bot_id}"}} == 1))',
    "equity": 'max(gordon_bot_equity{{bot_id="{bot_id}"}})',
    "last_bar_age_seconds": 'time() - max(gordon_bot_last_bar_timestamp_seconds{{bot_id="{bot_id}"}})',
}


class PrometheusClient:
    """Instant queries against Prometheus' HTTP API."""

    def __init__(self, http: PeerHttp, base_url: str) -> None:
        self._http = http
        self._base = base_url

    async def query(self, promql: str) -> float | None:
        """The first sample of an instant query; None when it matched no series (or is NaN/Inf)."""
        response = await self._http.request(PEER, "GET", f"{self._base}/api/v1/query",
                                             params={"query": promql, "timeout": f"{self._http.timeout_s:g}"})
        body = json_body(response, peer=PEER)
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(body, dict) and body.get("errorType") == "timeout":
                raise PeerTimeout(f"prometheus timed out evaluating the query: {error}", extra={"peer": PEER})
            raise PeerError(f"prometheus refused the query ({response.status_code}): {error or 'no detail'}",
                            extra={"peer": PEER})
        return _first_value(body.get("data") or {})


def _first_value(data: dict[str, Any]) -> float | None:
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        raw = result[1]
    elif isinstance(result, list) and result:
        raw = result[0].get("value", [None, None])[1]
    else:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


async def metrics_summary(client: PrometheusClient, *, bot_id: int) -> MetricsSummary:
    """Run the six summary queries concurrently; failures become named ``missing`` entries."""
    names = list(SUMMARY_QUERIES)
    results = await asyncio.gather(*(client.query(SUMMARY_QUERIES[n].format(bot_id=bot_id)) for n in names),
                                   return_exceptions=True)
    values: dict[str, Any] = {}
    missing: list[MissingQuery] = []
    for name, result in zip(names, results, strict=True):
        if isinstance(result, PeerTimeout):
            missing.append(MissingQuery(query=name, reason="timeout", detail=result.detail))
        elif isinstance(result, PeerError):
            missing.append(MissingQuery(query=name, reason="error", detail=result.detail))
        elif isinstance(result, BaseException):
            # A bug in parsing must not turn the whole answer into a 500: name it and go on.
            logger.error("metrics-summary query failed unexpectedly", exc_info=result, extra={"query": name})
            missing.append(MissingQuery(query=name, reason="error", detail=type(result).__name__))
        elif result is None:
            missing.append(MissingQuery(query=name, reason="no_data", detail="the query matched no series"))
        else:
            values[name] = result
    if "up" in values:
        values["up"] = values["up"] >= 1
    return MetricsSummary(bot_id=bot_id, at=datetime.now(UTC), complete=not missing, missing=missing, **values)
