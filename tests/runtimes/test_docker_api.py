"""DockerAPI error translation (httpx MockTransport) and runtime edge cases without a daemon."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from gordon_manager.runtimes import (
    DockerRuntime,
    PayloadPolicy,
    RuntimeConfigError,
    RuntimeFailure,
    RuntimeUnavailable,
    SwarmRuntime,
    WorkloadNotFound,
    WorkloadSpec,
    create_runtime,
)
from gordon_manager.runtimes.base import label_int, parse_signal
from gordon_manager.runtimes.docker import container_events, observed_from_inspect, parse_docker_time
from gordon_manager.runtimes.docker_api import DockerAPI, DockerConflict, DockerNotFound, encode_filters
from gordon_manager.runtimes.swarm import observed_from_service
from tests.conftest import wait_for

POLICY = PayloadPolicy(allowed_images=("gordon-bot",))


def api_with(handler: Callable[[httpx.Request], httpx.Response]) -> DockerAPI:
    return DockerAPI(
        base_url="http://proxy", transport=httpx.MockTransport(handler), timeout_s=1, api_version="v1.41"
    )


def status(
    code: int, body: object = None, text: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(code, text=text)
        return httpx.Response(code, json=body if body is not None else {"message": f"status {code}"})

    return handler


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (raising(httpx.ConnectError("refused")), RuntimeUnavailable),
        (raising(httpx.ReadTimeout("slow")), RuntimeUnavailable),
        (raising(httpx.RemoteProtocolError("eof")), RuntimeUnavailable),
        (status(500), RuntimeUnavailable),
        (status(503, text="<html>503 Service Unavailable</html>"), RuntimeUnavailable),
        (status(403, text="<html>403 Forbidden</html>"), RuntimeUnavailable),
        (status(429), RuntimeUnavailable),
        (status(400), RuntimeConfigError),
        (status(404, {"message": "No such image: x:1"}), RuntimeConfigError),
        (status(404, {"message": "No such container: x"}), DockerNotFound),
        (status(409), DockerConflict),
    ],
)
async def test_errors_are_translated_and_never_leak_httpx(handler, error) -> None:
    api = api_with(handler)
    with pytest.raises(error) as info:
        await api.inspect_container("x")
    assert isinstance(info.value, RuntimeFailure) and not isinstance(info.value, httpx.HTTPError)
    await api.close()


async def test_versioned_paths_filters_and_odd_bodies() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/_ping"):
            return httpx.Response(200, text="nope")
        if request.url.path.endswith("/info"):
            return httpx.Response(200, text="not json")
        return httpx.Response(200, text="not json either")

    api = api_with(handler)
    with pytest.raises(RuntimeUnavailable):
        await api.ping()
    with pytest.raises(RuntimeUnavailable):
        await api.info()
    with pytest.raises(RuntimeUnavailable):
        await api.create_container(name="n", payload={})
    assert seen[0].url.path == "/v1.41/_ping"
    assert encode_filters({"label": "a=b", "x": ["1", "2"]}) == json.dumps(
        {"label": ["a=b"], "x": ["1", "2"]}
    )
    assert encode_filters(None) is None
    assert api.timeout_s == 1
    await api.close()


async def test_idempotent_calls_swallow_not_modified_and_not_found() -> None:
    api = api_with(
        lambda r: httpx.Response(304) if r.method == "POST" else httpx.Response(404, json={"message": "gone"})
    )
    await api.start_container("x")
    await api.stop_container("x", timeout_s=1)
    await api.remove_container("x")
    await api.remove_service("x")
    await api.close()


async def test_event_stream_decodes_lines_and_reports_errors() -> None:
    lines = (
        b'{"Action":"die","Actor":{"ID":"c1","Attributes":{"gordon.bot_id":"5"}},"timeNano":1}\n\nnot json\n'
    )
    api = api_with(lambda r: httpx.Response(200, content=lines))
    assert [e["Action"] async for e in api.events(filters={"label": ["x"]}, since="1.0")] == ["die"]
    await api.close()
    api = api_with(status(403, text="forbidden"))
    with pytest.raises(RuntimeUnavailable):
        async for _ in api.events(filters={}):
            pass
    await api.close()
    api = api_with(raising(httpx.ConnectTimeout("slow")))
    with pytest.raises(RuntimeUnavailable):
        async for _ in api.events(filters={}):
            pass
    await api.close()
    api = api_with(raising(httpx.ReadTimeout("idle")))
    assert [e async for e in api.events(filters={})] == []
    await api.close()


async def test_container_events_reconnect_and_drop_duplicates() -> None:
    import asyncio

    calls: list[httpx.Request] = []
    event = {
        "Action": "die",
        "Actor": {"ID": "c1", "Attributes": {"gordon.bot_id": "5", "com.docker.swarm.service.id": "svc"}},
        "timeNano": 1_500_000_000_123,
    }
    other = {**event, "Action": "exec_start"}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 2:
            raise httpx.ConnectError("proxy down")
        # Every connection replays the same event: it must be reported once.
        return httpx.Response(200, content=(json.dumps(event) + "\n" + json.dumps(other) + "\n").encode())

    api = api_with(handler)
    closed = asyncio.Event()
    stream = container_events(
        api,
        labels=["gordon.managed=true"],
        closed=closed,
        reconnect_delay_s=0.01,
        workload_attr="com.docker.swarm.service.id",
    )
    first = await stream.__anext__()
    assert (first.bot_id, first.kind, first.workload_id) == (5, "died", "svc")
    pending = asyncio.ensure_future(stream.__anext__())
    # Two reconnects after the failed one, each replaying the event: it must not come out again.
    await wait_for(lambda: len(calls) >= 4, timeout=10, interval=0.01)
    assert not pending.done(), "the replayed event was reported twice"
    assert all(call.url.params["since"] == "1500.000000123" for call in calls[1:])
    closed.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, timeout=2)
    await api.close()


def test_parsers() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("garbage") is None
    assert parse_docker_time("2026-01-02T03:04:05.123456789Z").microsecond == 123456
    assert parse_signal("10").name == "SIGUSR1" and parse_signal("usr2").name == "SIGUSR2"
    assert label_int({"a": "x"}, "a") is None and label_int(None, "a") is None
    obs = observed_from_inspect(
        {"Id": "c", "Config": {"Labels": {}}, "State": {"Status": "dead", "ExitCode": 1}}
    )
    assert obs.state == "exited" and obs.exit_code == 1
    assert observed_from_service({"ID": "s", "Spec": {"Labels": {}}}, []) is None
    svc = {
        "ID": "s",
        "Spec": {
            "Labels": {"gordon.bot_id": "1", "gordon.config_version": "2"},
            "Mode": {"Replicated": {"Replicas": 0}},
        },
    }
    assert observed_from_service(svc, []).state == "exited"
    svc["Spec"]["Mode"]["Replicated"]["Replicas"] = 1
    assert observed_from_service(svc, []).state == "starting"


def test_create_runtime_factory(tmp_path) -> None:
    assert create_runtime(kind="process", state_dir=tmp_path).kind == "process"
    assert isinstance(
        create_runtime(kind="docker", proxy_url="http://p", allowed_images=["gordon-bot"]), DockerRuntime
    )
    assert isinstance(
        create_runtime(kind="swarm", proxy_url="http://p", allowed_images=["gordon-bot"]), SwarmRuntime
    )
    for kwargs in ({"kind": "process"}, {"kind": "docker"}, {"kind": "k8s"}):
        with pytest.raises(RuntimeConfigError):
            create_runtime(**kwargs)


async def test_swarm_ping_requires_an_active_manager() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/_ping"):
            return httpx.Response(200, text="OK")
        return httpx.Response(200, json={"Swarm": {"LocalNodeState": "inactive"}})

    runtime = SwarmRuntime(proxy_url="http://p", policy=POLICY, api=api_with(handler))
    with pytest.raises(RuntimeUnavailable, match="swarm"):
        await runtime.ping()
    await runtime.close()


async def test_docker_start_gives_up_after_repeated_conflicts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/containers/json"):
            return httpx.Response(200, json=[])  # nobody visible ...
        return httpx.Response(
            409, json={"message": "Conflict. The container name is already in use"}
        )  # ... yet taken

    runtime = DockerRuntime(proxy_url="http://p", policy=POLICY, api=api_with(handler))
    spec = WorkloadSpec(bot_id=1, config_version=1, name="gordon-bot-1", image="gordon-bot:1", command=("x",))
    with pytest.raises(RuntimeUnavailable, match="could not converge"):
        await runtime.start(spec)
    with pytest.raises(WorkloadNotFound):
        await runtime.signal(1, "SIGUSR1")
    await runtime.close()


def test_addresses_on_the_bots_network() -> None:
    from gordon_manager.runtimes.docker import container_address, observed_from_summary
    from gordon_manager.runtimes.swarm import task_address

    nets = {"other": {"IPAddress": "172.18.0.5"}, "gordon-bots": {"IPAddress": "10.0.0.7"}}
    assert container_address(nets, "gordon-bots") == "10.0.0.7"
    assert container_address(nets, "absent") == "172.18.0.5"  # any network when ours is not listed
    assert container_address({"none": {"IPAddress": ""}}, "none") is None and container_address(None) is None
    item = {"Id": "c", "Labels": {"gordon.bot_id": "3"}, "State": "running", "Status": "Up",
            "NetworkSettings": {"Networks": nets}}
    assert observed_from_summary(item, "gordon-bots").address == "10.0.0.7"
    assert observed_from_summary({**item, "State": "exited"}, "gordon-bots").address is None
    inspect = {"Id": "c", "Config": {"Labels": {"gordon.bot_id": "3"}}, "State": {"Status": "running"},
               "NetworkSettings": {"Networks": nets}}
    assert observed_from_inspect(inspect, "gordon-bots").address == "10.0.0.7"
    task = {"NetworksAttachments": [{"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.255.0.3/16"]},
                                    {"Network": {"Spec": {"Name": "gordon-bots"}}, "Addresses": ["10.0.1.4/24"]}]}
    assert task_address(task, "gordon-bots") == "10.0.1.4" and task_address({}, "gordon-bots") is None
    svc = {"ID": "s", "Spec": {"Labels": {"gordon.bot_id": "1"}, "Mode": {"Replicated": {"Replicas": 1}}}}
    running = {"DesiredState": "running", "Status": {"State": "running", "ContainerStatus": {"ContainerID": "k"}}}
    # a swarm-scoped bridge lists no task address: the container's, from the node, is used
    assert observed_from_service(svc, [running], "gordon-bots", {"k": "10.0.2.9"}).address == "10.0.2.9"
    pending = {"DesiredState": "running", "Status": {"State": "preparing"}}
    starting = observed_from_service(svc, [pending], "gordon-bots")
    assert starting.state == "starting" and starting.running and starting.address is None
