"""Docker runtime: one container per bot, through docker-socket-proxy only."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from gordon_manager.runtimes.base import (
    LABEL_BOT_ID,
    LABEL_CONFIG_VERSION,
    LABEL_MANAGED,
    Observed,
    RuntimeConfigError,
    RuntimeEvent,
    RuntimeFailure,
    RuntimeUnavailable,
    WorkloadNotFound,
    WorkloadSpec,
    label_int,
    parse_signal,
)
from gordon_manager.runtimes.docker_api import DockerAPI, DockerConflict, DockerNotFound
from gordon_manager.runtimes.payload import container_payload
from gordon_manager.runtimes.proxied import ProxiedRuntime

logger = logging.getLogger(__name__)

_EXIT_RE = re.compile(r"Exited \((-?\d+)\)")
_STATE_MAP = {"dead": "exited", "removing": "exited"}
_EVENT_KINDS = {"start": "started", "die": "died", "destroy": "removed"}


def parse_docker_time(value: str | None) -> datetime | None:
    """Parse Docker's RFC 3339 nanosecond timestamps; None for the zero time."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6]}"
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def container_address(networks: Mapping[str, Any] | None, network: str | None = None) -> str | None:
    """The container's IPv4 address on ``network`` (any network when None or absent); None without one."""
    networks = networks or {}
    ordered = [networks[network]] if network and network in networks else list(networks.values())
    for endpoint in ordered:
        address = (endpoint or {}).get("IPAddress")
        if address:
            return str(address)
    return None


def observed_from_summary(item: Mapping[str, Any], network: str | None = None) -> Observed | None:
    """Observed from a /containers/json entry (one list call, so started_at is the create time)."""
    labels = item.get("Labels") or {}
    bot_id = label_int(labels, LABEL_BOT_ID)
    if bot_id is None:
        return None
    state = str(item.get("State") or "missing")
    exit_code = None
    match = _EXIT_RE.search(str(item.get("Status") or ""))
    if match:
        exit_code = int(match.group(1))
    created = item.get("Created")
    return Observed(
        bot_id=bot_id,
        workload_id=str(item["Id"]),
        state=_STATE_MAP.get(state, state),
        config_version=label_int(labels, LABEL_CONFIG_VERSION),
        exit_code=exit_code,
        started_at=datetime.fromtimestamp(created, tz=UTC) if isinstance(created, (int, float)) else None,
        address=container_address((item.get("NetworkSettings") or {}).get("Networks"), network)
        if state == "running" else None,
    )


def observed_from_inspect(body: Mapping[str, Any], network: str | None = None) -> Observed:
    """Observed from a /containers/{id}/json body."""
    labels = (body.get("Config") or {}).get("Labels") or {}
    st = body.get("State") or {}
    state = str(st.get("Status") or "missing")
    exited = state in ("exited", "dead")
    return Observed(
        bot_id=label_int(labels, LABEL_BOT_ID) or 0,
        workload_id=str(body["Id"]),
        state=_STATE_MAP.get(state, state),
        config_version=label_int(labels, LABEL_CONFIG_VERSION),
        exit_code=int(st["ExitCode"]) if exited and st.get("ExitCode") is not None else None,
        started_at=parse_docker_time(st.get("StartedAt")),
        error=st.get("Error") or None,
        address=container_address((body.get("NetworkSettings") or {}).get("Networks"), network)
        if state == "running" else None,
    )


def _pick(candidates: list[Observed]) -> Observed:
    # Several containers for one bot should never exist; if they do, report the newest config.
    return max(candidates, key=lambda o: (o.config_version or -1, o.state == "running"))


def events_since_now() -> str:
    """`since` for an events stream created now: nothing after this call is missed, even though
    the stream only connects on the consumer's first iteration (assumes the daemon's clock is sane)."""
    return f"{time.time():.9f}"


async def container_events(
    api: DockerAPI,
    *,
    labels: list[str],
    closed: asyncio.Event,
    reconnect_delay_s: float = 0.5,
    workload_attr: str | None = None,
    since: str | None = None,
) -> AsyncIterator[RuntimeEvent]:
    """Follow container start/die/destroy events with our labels, reconnecting until `closed` is set.

    workload_attr names the event attribute holding the workload id (swarm: the service id);
    by default the container id is used. `since` (Docker's "seconds.nanos") replays from a moment.
    """
    filters = {"label": labels, "type": ["container"], "event": list(_EVENT_KINDS)}
    seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
    delay = reconnect_delay_s
    while not closed.is_set():
        try:
            async for raw in api.events(filters=filters, since=since):
                delay = reconnect_delay_s
                time_nano = int(raw.get("timeNano") or 0)
                if time_nano:
                    # Resume from the last event after a reconnect; `seen` drops the replayed duplicates.
                    since = f"{time_nano // 1_000_000_000}.{time_nano % 1_000_000_000:09d}"
                event = _to_event(raw, seen, workload_attr)
                if event is not None:
                    yield event
        except RuntimeFailure as exc:
            if closed.is_set():
                return
            logger.warning("docker events stream failed (%s); reconnecting in %.1fs", exc, delay)
        if closed.is_set():
            return
        try:
            await asyncio.wait_for(closed.wait(), timeout=delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 10.0)


def _to_event(
    raw: Mapping[str, Any], seen: OrderedDict[tuple[str, str, int], None], workload_attr: str | None
) -> RuntimeEvent | None:
    action = str(raw.get("Action") or raw.get("status") or "")
    kind = _EVENT_KINDS.get(action)
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    bot_id = label_int(attrs, LABEL_BOT_ID)
    if kind is None or bot_id is None:
        return None
    container_id = str(actor.get("ID") or raw.get("id") or "")
    key = (container_id, action, int(raw.get("timeNano") or 0))
    if key in seen:
        return None
    seen[key] = None
    while len(seen) > 512:
        seen.popitem(last=False)
    workload_id = str(attrs.get(workload_attr) or container_id) if workload_attr else container_id
    return RuntimeEvent(bot_id=bot_id, kind=kind, workload_id=workload_id)


class DockerRuntime(ProxiedRuntime):
    """Bots as containers labelled gordon.managed=true, reached through the socket proxy."""

    kind = "docker"

    async def ping(self) -> None:
        """Raise RuntimeUnavailable unless the daemon answers through the proxy."""
        await self._api.ping()

    async def observe(self) -> dict[int, Observed]:
        """Every container we own, keyed by bot id, from one list call."""
        items = await self._api.list_containers(filters=self._owned_filter())
        grouped: dict[int, list[Observed]] = {}
        for item in items:
            obs = observed_from_summary(item, self._policy.network)
            if obs is not None:
                grouped.setdefault(obs.bot_id, []).append(obs)
        return {bot_id: _pick(found) for bot_id, found in grouped.items()}

    async def _containers_for(self, bot_id: int) -> list[Observed]:
        items = await self._api.list_containers(filters=self._owned_filter(**{LABEL_BOT_ID: str(bot_id)}))
        found = (observed_from_summary(item, self._policy.network) for item in items)
        return [obs for obs in found if obs is not None]

    async def start(self, spec: WorkloadSpec) -> Observed:
        """Create and start the bot's container, adopting a matching one, replacing older ones."""
        payload = container_payload(spec, policy=self._policy)  # validate before touching anything
        async with self._lock(spec.bot_id):
            for _attempt in range(3):
                existing = await self._containers_for(spec.bot_id)
                keep = next((o for o in existing if o.config_version == spec.config_version), None)
                for other in existing:
                    if other is not keep:
                        logger.info(
                            "bot %s: replacing container %s (config v%s -> v%s)",
                            spec.bot_id,
                            other.workload_id[:12],
                            other.config_version,
                            spec.config_version,
                        )
                        await self._stop_and_remove(other.workload_id, timeout_s=self._policy.stop_timeout_s)
                if keep is not None:
                    if keep.running:
                        return keep
                    try:
                        return await self._start_existing(keep.workload_id)
                    except DockerNotFound:
                        continue  # removed under our feet: create afresh
                try:
                    container_id = await self._api.create_container(name=spec.name, payload=payload)
                except DockerConflict as exc:
                    # Another manager (or a racing task) created it first: adopt on the next pass.
                    if not any(
                        o.config_version == spec.config_version
                        for o in await self._containers_for(spec.bot_id)
                    ):
                        await self._raise_if_foreign(spec.name, exc)
                    await asyncio.sleep(0.1)
                    continue
                logger.info("bot %s: created container %s (%s)", spec.bot_id, container_id[:12], spec.name)
                return await self._start_existing(container_id, remove_on_config_error=True)
            raise RuntimeUnavailable(
                f"bot {spec.bot_id}: could not converge container {spec.name} after retries"
            )

    async def _raise_if_foreign(self, name: str, exc: DockerConflict) -> None:
        found = await self._api.list_containers(filters={"name": [f"^/{name}$"]})
        if any((c.get("Labels") or {}).get(LABEL_MANAGED) != "true" for c in found):
            raise RuntimeConfigError(
                f"container name {name!r} is taken by a container gordon does not manage"
            ) from exc

    async def _start_existing(self, container_id: str, *, remove_on_config_error: bool = False) -> Observed:
        try:
            await self._api.start_container(container_id)
        except RuntimeConfigError:
            if remove_on_config_error:
                # A container that can never start (bad command) must not linger as "created".
                await self._api.remove_container(container_id, force=True)
            raise
        except DockerConflict as exc:
            raise RuntimeUnavailable(str(exc)) from exc
        return observed_from_inspect(await self._api.inspect_container(container_id), self._policy.network)

    async def _stop_and_remove(self, container_id: str, *, timeout_s: float) -> None:
        try:
            await self._api.stop_container(container_id, timeout_s=timeout_s)
        except DockerNotFound:
            return
        except DockerConflict:
            pass  # already being removed: the forced delete below settles it
        try:
            await self._api.remove_container(container_id, force=True)
        except DockerConflict:
            pass  # "removal already in progress"

    async def stop(self, bot_id: int, *, timeout_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after timeout_s (default: the policy's stop timeout); idempotent."""
        timeout_s = self._policy.stop_timeout_s if timeout_s is None else timeout_s
        async with self._lock(bot_id):
            for obs in await self._containers_for(bot_id):
                if obs.state in ("exited", "created"):
                    continue
                try:
                    await self._api.stop_container(obs.workload_id, timeout_s=timeout_s)
                except (DockerNotFound, DockerConflict):
                    continue

    async def remove(self, bot_id: int) -> None:
        """Stop gracefully, then delete every container of the bot; idempotent."""
        async with self._lock(bot_id):
            for obs in await self._containers_for(bot_id):
                await self._stop_and_remove(obs.workload_id, timeout_s=self._policy.stop_timeout_s)

    async def signal(self, bot_id: int, sig: str) -> None:
        """Send a signal to the bot's running container."""
        signum = parse_signal(sig)
        running = [o for o in await self._containers_for(bot_id) if o.running]
        if not running:
            raise WorkloadNotFound(f"bot {bot_id} has no running container")
        try:
            await self._api.kill_container(_pick(running).workload_id, signal=signum.name)
        except (DockerNotFound, DockerConflict) as exc:
            raise WorkloadNotFound(f"bot {bot_id}: {exc}") from exc

    def events(self) -> AsyncIterator[RuntimeEvent]:
        """start/die/destroy of our containers, from /events; reconnects until close()."""
        return container_events(
            self._api,
            labels=self._owned_filter()["label"],
            closed=self._closed,
            reconnect_delay_s=self._reconnect_delay_s,
            since=events_since_now(),
        )
