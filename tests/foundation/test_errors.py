"""Every error is application/problem+json with a request id that is also in the log line."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from pydantic import BaseModel

from gordon_manager.observability.logging import JsonFormatter


class Body(BaseModel):
    qty: int


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


@pytest.fixture
async def routes(app):
    @app.post("/test/validate")
    async def validate(body: Body) -> dict:
        return {"qty": body.qty}

    @app.get("/test/boom")
    async def boom() -> dict:
        raise RuntimeError("secret internals at line 42")

    return app


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "requestId"} <= set(body)
    assert body["requestId"] == response.headers["x-request-id"]
    return body


async def test_404_is_a_problem(client):
    body = assert_problem(await client.get("/nope"), 404)
    assert body["type"] == "/problems/not-found"


async def test_405_is_a_problem(client):
    body = assert_problem(await client.delete("/healthz"), 405)
    assert "DELETE" in body["detail"]


async def test_422_names_the_field(routes, client, operator_headers):
    # Writes reach their route's validation only with a valid operator token (http/edge.py).
    body = assert_problem(await client.post("/test/validate", json={"qty": "many"}, headers=operator_headers), 422)
    assert body["errors"][0]["field"] == "qty"


async def test_malformed_json_is_400(routes, client, operator_headers):
    body = assert_problem(await client.post("/test/validate", content=b"{nope",
                                            headers={"content-type": "application/json", **operator_headers}), 400)
    assert body["type"] == "/problems/malformed-json"


async def test_unexpected_exception_is_500_problem_without_trace_and_logged_with_request_id(routes, log_stream):
    import httpx

    # raise_app_exceptions=False: see what a real client sees instead of the re-raised error
    transport = httpx.ASGITransport(app=routes, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        response = await http.get("/test/boom", headers={"X-Request-ID": "req-boom-1"})
    body = assert_problem(response, 500)
    assert body["requestId"] == "req-boom-1"
    assert "secret internals" not in response.text and "Traceback" not in response.text
    lines = [orjson.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    errors = [line for line in lines if line.get("msg") == "unhandled error"]
    assert errors and errors[0]["request_id"] == "req-boom-1"
    access = [line for line in lines if line.get("msg") == "request" and line.get("path") == "/test/boom"]
    assert access and access[0]["status"] == 500 and access[0]["request_id"] == "req-boom-1"


async def test_invalid_request_id_header_is_replaced(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"
    assert len(response.headers["x-request-id"]) == 32
