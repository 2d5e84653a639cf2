"""Thin async Docker Engine API client (httpx) for talking to docker-socket-proxy.

Every httpx error and error status is translated here, so runtimes only ever see our errors.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from gordon_manager.runtimes.base import RuntimeConfigError, RuntimeFailure, RuntimeUnavailable

logger = logging.getLogger(__name__)


class DockerNotFound(RuntimeFailure):
    """404 for a container/service/task (not an image: a missing image is a RuntimeConfigError)."""


class DockerConflict(RuntimeFailure):
    """409: a name is taken, or the object is in the wrong state for the operation."""


class DockerNotModified(RuntimeFailure):
    """304: already started / already stopped."""


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:500]


def encode_filters(filters: Mapping[str, Any] | None) -> str | None:
    """Encode a filters mapping the way the Engine API expects ({"key": ["v", ...]})."""
    if not filters:
        return None
    return json.dumps({k: list(v) if isinstance(v, (list, tuple, set)) else [v] for k, v in filters.items()})


class DockerAPI:
    """Async client for the subset of the Engine API the runtimes use."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float = 10.0,
        api_version: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._prefix = f"/v{api_version.lstrip('v')}" if api_version else ""
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"User-Agent": "gordon-manager"},
        )

    @property
    def timeout_s(self) -> float:
        """Default per-request timeout in seconds."""
        return self._timeout_s

    async def close(self) -> None:
        """Close the underlying connection pool."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        timeout_s: float | None = None,
        image_request: bool = False,
    ) -> httpx.Response:
        """Send one request; translate transport errors and error statuses into our errors."""
        url = f"{self._prefix}{path}"
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._client.request(
                method,
                url,
                params=clean,
                json=json_body,
                timeout=httpx.Timeout(timeout_s) if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise RuntimeUnavailable(f"docker {method} {path}: timed out") from exc
        except httpx.HTTPError as exc:
            raise RuntimeUnavailable(f"docker {method} {path}: {type(exc).__name__}: {exc}") from exc
        self._raise_for_status(method, path, response, image_request=image_request)
        return response

    @staticmethod
    def _raise_for_status(method: str, path: str, response: httpx.Response, *, image_request: bool) -> None:
        status = response.status_code
        if status < 300:
            return
        detail = f"docker {method} {path}: {status} {_message(response)}"
        if status == 304:
            raise DockerNotModified(detail)
        if status == 404:
            if image_request or "no such image" in detail.lower():
                raise RuntimeConfigError(detail)
            raise DockerNotFound(detail)
        if status == 409:
            raise DockerConflict(detail)
        if status == 403 or status >= 500 or status in (408, 429):
            # 403 is the socket proxy refusing the path: an operator must fix the proxy, the
            # manager can only keep retrying; 5xx is the daemon or the proxy failing.
            raise RuntimeUnavailable(detail)
        raise RuntimeConfigError(detail)

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET a path and decode its JSON body."""
        response = await self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeUnavailable(f"docker GET {path}: invalid JSON from proxy") from exc

    async def post_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        image_request: bool = False,
    ) -> Any:
        """POST a JSON body and decode the JSON answer (None when empty)."""
        response = await self.request(
            "POST", path, params=params, json_body=body, image_request=image_request
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeUnavailable(f"docker POST {path}: invalid JSON from proxy") from exc

    # -- system ---------------------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /_ping; RuntimeUnavailable unless the daemon answers OK."""
        response = await self.request("GET", "/_ping")
        if response.text.strip() != "OK":
            raise RuntimeUnavailable(f"docker /_ping answered {response.text[:100]!r}")

    async def version(self) -> dict[str, Any]:
        """GET /version."""
        return await self.get_json("/version")

    async def info(self) -> dict[str, Any]:
        """GET /info."""
        return await self.get_json("/info")

    # -- containers -----------------------------------------------------------------------------

    async def list_containers(self, *, filters: Mapping[str, Any], all_: bool = True) -> list[dict[str, Any]]:
        """GET /containers/json with label/name filters."""
        return await self.get_json(
            "/containers/json", params={"all": "1" if all_ else "0", "filters": encode_filters(filters)}
        )

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        """GET /containers/{id}/json."""
        return await self.get_json(f"/containers/{container_id}/json")

    async def create_container(self, *, name: str, payload: Mapping[str, Any]) -> str:
        """POST /containers/create; returns the new id (404 no such image -> RuntimeConfigError)."""
        body = await self.post_json(
            "/containers/create", params={"name": name}, body=dict(payload), image_request=True
        )
        return str(body["Id"])

    async def start_container(self, container_id: str) -> None:
        """POST /containers/{id}/start; already running is not an error."""
        try:
            await self.request("POST", f"/containers/{container_id}/start")
        except DockerNotModified:
            pass

    async def stop_container(self, container_id: str, *, timeout_s: float) -> None:
        """POST /containers/{id}/stop?t=; already stopped is not an error."""
        grace = max(0, int(timeout_s + 0.999))
        try:
            await self.request(
                "POST",
                f"/containers/{container_id}/stop",
                params={"t": grace},
                timeout_s=self._timeout_s + grace,
            )
        except DockerNotModified:
            pass

    async def kill_container(self, container_id: str, *, signal: str = "SIGKILL") -> None:
        """POST /containers/{id}/kill?signal=."""
        await self.request("POST", f"/containers/{container_id}/kill", params={"signal": signal})

    async def remove_container(self, container_id: str, *, force: bool = True) -> None:
        """DELETE /containers/{id}; a container already gone is not an error."""
        try:
            await self.request(
                "DELETE", f"/containers/{container_id}", params={"force": "1" if force else "0", "v": "1"}
            )
        except DockerNotFound:
            pass

    async def rename_container(self, container_id: str, *, name: str) -> None:
        """POST /containers/{id}/rename?name= (409 when the name is taken)."""
        await self.request("POST", f"/containers/{container_id}/rename", params={"name": name})

    async def container_health(self, container_id: str) -> dict[str, Any]:
        """State of a container with its HEALTHCHECK result, from one inspect.

        Returns {"id", "name", "image", "status", "exit_code", "health" (starting|healthy|unhealthy|None),
        "failing_streak", "last_output"}; dockerd runs the probe inside the container, so this works
        with network none.
        """
        body = await self.inspect_container(container_id)
        state = body.get("State") or {}
        health = state.get("Health") or {}
        log = health.get("Log") or []
        return {
            "id": str(body.get("Id") or container_id),
            "name": str(body.get("Name") or "").lstrip("/"),
            "image": (body.get("Config") or {}).get("Image"),
            "status": str(state.get("Status") or "missing"),
            "exit_code": state.get("ExitCode"),
            "health": health.get("Status") or None,
            "failing_streak": int(health.get("FailingStreak") or 0),
            "last_output": str(log[-1].get("Output") or "").strip()[:500] if log else None,
        }

    # -- swarm ----------------------------------------------------------------------------------

    async def list_services(self, *, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """GET /services with filters."""
        return await self.get_json("/services", params={"filters": encode_filters(filters)})

    async def inspect_service(self, service_id: str) -> dict[str, Any]:
        """GET /services/{id}."""
        return await self.get_json(f"/services/{service_id}")

    async def create_service(self, spec: Mapping[str, Any]) -> str:
        """POST /services/create; returns the service id."""
        body = await self.post_json("/services/create", body=dict(spec), image_request=True)
        return str(body["ID"])

    async def update_service(self, service_id: str, *, version: int, spec: Mapping[str, Any]) -> None:
        """POST /services/{id}/update?version= (optimistic concurrency on the swarm object version)."""
        await self.post_json(f"/services/{service_id}/update", params={"version": version}, body=dict(spec))

    async def remove_service(self, service_id: str) -> None:
        """DELETE /services/{id}; a service already gone is not an error."""
        try:
            await self.request("DELETE", f"/services/{service_id}")
        except DockerNotFound:
            pass

    async def list_tasks(self, *, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
        """GET /tasks with filters."""
        return await self.get_json("/tasks", params={"filters": encode_filters(filters)})

    # -- events ---------------------------------------------------------------------------------

    async def events(
        self, *, filters: Mapping[str, Any], since: str | None = None, idle_timeout_s: float = 300.0
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream GET /events as decoded JSON objects until the connection ends.

        Ends normally when the server closes the stream or stays idle for idle_timeout_s;
        callers reconnect (with `since`) to resume.
        """
        params = {"filters": encode_filters(filters), "since": since}
        params = {k: v for k, v in params.items() if v is not None}
        timeout = httpx.Timeout(self._timeout_s, read=idle_timeout_s)
        try:
            async with self._client.stream(
                "GET", f"{self._prefix}/events", params=params, timeout=timeout
            ) as resp:
                if resp.status_code >= 300:
                    await resp.aread()
                    self._raise_for_status("GET", "/events", resp, image_request=False)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        yield json.loads(line)
                    except ValueError:
                        logger.warning("docker events: skipping undecodable line %r", line[:200])
        except httpx.ReadTimeout:
            return  # idle stream: let the caller reconnect quietly
        except httpx.TimeoutException as exc:
            raise RuntimeUnavailable("docker GET /events: timed out") from exc
        except httpx.HTTPError as exc:
            raise RuntimeUnavailable(f"docker GET /events: {type(exc).__name__}: {exc}") from exc
