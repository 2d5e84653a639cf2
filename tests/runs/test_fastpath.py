"""The equity page fast path: same bytes as the FastAPI route, same metrics and request id, and every
case it does not answer reaches the application unchanged."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx
from prometheus_client import REGISTRY

from gordon_manager.runs.fastpath import ENDPOINT, ROUTE_PATH
from tests.runs.helpers import add_points, make_run, problem


async def route_only(app, path: str, query: str = "") -> tuple[int, bytes]:
    """Call the application's router directly: the declared FastAPI route, without any middleware."""
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": query.encode(), "headers": [], "app": app, "http_version": "1.1",
             "scheme": "http", "server": ("test", 80), "client": ("test", 1)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async with AsyncExitStack() as stack:  # what FastAPI's own middleware puts in the scope
        scope["fastapi_middleware_astack"] = scope["fastapi_astack"] = stack
        await app.router(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_fast_path_answers_with_the_routes_bytes(api, admin, reads_app):
    run = await make_run(admin)
    await add_points(admin, run, [100.0 + i / 7 for i in range(9)])
    first = await api.get(f"/runs/{run}/equity", params={"limit": 4})
    status, body = await route_only(reads_app, f"/runs/{run}/equity", "limit=4")
    assert first.status_code == status == 200
    assert first.content == body
    assert first.headers["content-type"] == "application/json"
    assert int(first.headers["content-length"]) == len(first.content)
    cursor = first.json()["nextCursor"]
    second = await api.get(f"/runs/{run}/equity", params={"limit": 4, "cursor": cursor})
    assert second.content == (await route_only(reads_app, f"/runs/{run}/equity", f"limit=4&cursor={cursor}"))[1]
    assert [float(i["equity"]) for i in first.json()["items"] + second.json()["items"]] == \
        [100.0 + i / 7 for i in range(8)]


async def test_fast_path_is_counted_once_under_the_route_template(api, admin):
    run = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0])
    labels = {"method": "GET", "route": ROUTE_PATH, "status": "200"}
    before = (sample("gordon_manager_requests_total", **labels),
              sample("gordon_manager_bff_reads_total", endpoint=ENDPOINT))
    response = await api.get(f"/runs/{run}/equity", headers={"X-Request-ID": "fast-1"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "fast-1"
    after = (sample("gordon_manager_requests_total", **labels),
             sample("gordon_manager_bff_reads_total", endpoint=ENDPOINT))
    assert after == (before[0] + 1, before[1] + 1)
    generated = (await api.get(f"/runs/{run}/equity")).headers["x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0


async def test_what_the_fast_path_does_not_answer_gets_the_applications_answer(api: httpx.AsyncClient, admin):
    run = await make_run(admin)
    await add_points(admin, run, [1.0, 2.0, 9.0, 3.0, -4.0, 5.0, 6.0])
    reads = sample("gordon_manager_bff_reads_total", endpoint=ENDPOINT)
    problem(await api.get("/runs/987654321/equity"), 404)  # no such run
    problem(await api.get(f"/runs/{run}/equity", params={"cursor": "bm90LWEtY3Vyc29y"}), 400)  # forged cursor
    problem(await api.get(f"/runs/{run}/equity", params={"limit": "0"}), 422)
    problem(await api.get(f"/runs/{run}/equity", params={"from": "2024-03-02T00:00:00Z",
                                                        "to": "2024-03-01T00:00:00Z"}), 422)
    problem(await api.get("/runs/0/equity"), 422)  # outside the id range: the route's own validation
    problem(await api.get("/runs/99999999999999999999/equity"), 422)
    assert (await api.post(f"/runs/{run}/equity")).status_code == 405
    problem(await api.get(f"/runs/{run}/equity", params={"points": 3}), 422)  # fewer than the 4 always kept
    for method in ("lttb", "minmax"):
        downsampled = (await api.get(f"/runs/{run}/equity", params={"points": 4, "method": method})).json()
        assert downsampled["downsample"]["requestedPoints"] == 4
        assert [float(i["equity"]) for i in downsampled["items"]] == [1.0, 9.0, -4.0, 6.0]  # ends and extremes
    # Each read the handler saw is counted once, by the route: 404, 400, two 422s from the query,
    # the 422 of points=3 and the two downsampled answers. The path-parameter 422s and the 405 never
    # reach the handler.
    assert sample("gordon_manager_bff_reads_total", endpoint=ENDPOINT) == reads + 7


def test_the_route_has_no_dependency_the_fast_path_would_skip():
    """The fast path answers below FastAPI's routing: the route must ask for nothing but the request and the
    run id (anything more, e.g. an auth dependency, must be done by the fast path too — then update this)."""
    from gordon_manager.runs.fastpath import EquityPageFastPath

    route = EquityPageFastPath(lambda *a: None)._route
    assert route.dependencies == [] and route.dependant.dependencies == []
    assert [p.name for p in route.dependant.path_params] == ["run_id"] and route.dependant.query_params == []
    assert route.dependant.request_param_name == "request" and route.dependant.body_params == []
    assert route.methods == {"GET"}


async def test_the_fast_path_answers_its_errors_itself_without_a_second_read(api: httpx.AsyncClient, admin,
                                                                              reads_app, monkeypatch):
    from gordon_manager.runs import service

    calls = []
    page = service.equity_page

    async def counted(*args, **kwargs):
        calls.append(kwargs["run_id"])
        return await page(*args, **kwargs)

    monkeypatch.setattr(service, "equity_page", counted)  # spy: the route and the fast path share it
    missing = problem(await api.get("/runs/987654321/equity", headers={"X-Request-ID": "fast-404"}), 404)
    assert missing["requestId"] == "fast-404" and missing["instance"] == "/runs/987654321/equity"
    assert calls == [987654321]  # one read: the application did not run it again
