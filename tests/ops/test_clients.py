"""Edge cases of the peer clients' parsing and error translation (no peer needed)."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest

from gordon_manager.errors import PeerError, PeerTimeout
from gordon_manager.observability.prober import ProbeFailed, probe_nats
from gordon_manager.proxies.alertmanager import AlertmanagerClient
from gordon_manager.proxies.prometheus import PrometheusClient, _first_value, metrics_summary
from gordon_manager.proxies.upstream import PeerHttp


def http_answering(status: int, body) -> PeerHttp:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return PeerHttp(timeout_s=1.0, transport=httpx.MockTransport(handler))


def test_first_value_shapes():
    assert _first_value({"resultType": "scalar", "result": [1.0, "2.5"]}) == 2.5
    assert _first_value({"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "3"]}]}) == 3.0
    assert _first_value({"resultType": "vector", "result": []}) is None
    assert _first_value({"resultType": "vector", "result": [{"value": [1.0, "NaN"]}]}) is None
    assert _first_value({"resultType": "vector", "result": [{"value": [1.0, "bogus"]}]}) is None
    assert not math.isnan(_first_value({"resultType": "scalar", "result": [0, "+Inf"]}) or 0.0)


async def test_prometheus_query_timeout_answer_is_a_timeout():
    http = http_answering(503, {"status": "error", "errorType": "timeout",
                                "error": "query timed out in expression evaluation"})
    with pytest.raises(PeerTimeout):
        await PrometheusClient(http, "http://prom").query("up")
    await http.close()


async def test_summary_survives_an_unexpected_client_bug():
    class Broken:
        async def query(self, promql: str):
            raise ValueError("parser bug")

    summary = await metrics_summary(Broken(), bot_id=1)  # type: ignore[arg-type]
    assert summary.complete is False
    assert {m.detail for m in summary.missing} == {"ValueError"}


async def test_alertmanager_answering_json_that_is_not_a_list_is_502():
    http = http_answering(200, {"status": "not a list"})
    with pytest.raises(PeerError, match="alertmanager answered 200"):
        await AlertmanagerClient(http, "http://am").firing()
    await http.close()


async def test_invalid_peer_url_is_a_peer_error():
    http = PeerHttp(timeout_s=1.0)
    with pytest.raises(PeerError, match="invalid url"):
        await http.request("prometheus", "GET", "http://[::1/api")
    with pytest.raises(PeerError, match="prometheus is unreachable"):
        await http.request("prometheus", "GET", "localhost:9090/api")  # no scheme
    await http.close()


async def test_nats_probe_refuses_a_server_that_is_not_nats():
    async def greet(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ProbeFailed, match="did not greet with INFO"):
            await probe_nats(f"nats://127.0.0.1:{port}")
        with pytest.raises(ProbeFailed, match="no NATS server"):
            await probe_nats(" , ")
    finally:
        server.close()
        await server.wait_closed()
