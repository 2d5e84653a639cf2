"""The /ws JSON protocol: channels, client messages, and server frames encoded once as shared bytes.

Every event is serialised exactly once (``outbox_item`` / ``breaker_item``) into an *item*; frames
are built by concatenating item bytes, and a frame's wire form (WebSocket header + payload) is
built once and written to every subscriber. asyncapi.yaml documents the same shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gordon_manager.events.wire import breaker_rows, row_data
from gordon_manager.http.values import iso_utc
from gordon_manager.observability import metrics

# The seed's five DirectFromNotify channels, then the manager's own (triggers of migration 0007).
DIRECT_FROM_NOTIFY = ("risk_halt_changed", "breaker_state", "portfolio_state", "source_freshness", "backfill_jobs")
MANAGER_CHANNELS = ("bot_config_changed", "bot_status", "bot_events", "deploy_progress", "run_progress")
CHANNELS: tuple[str, ...] = DIRECT_FROM_NOTIFY + MANAGER_CHANNELS
BREAKER_CHANNEL = "breaker_state"

MAX_CLIENT_MESSAGE_BYTES = 16 * 1024
ERROR_CODES = ("bad_json", "bad_message", "unknown_channel", "too_large", "unavailable", "internal")
RESYNC_REASONS = ("overflow", "pruned", "unknown_position", "too_far_behind", "unavailable")


# -- client → server -------------------------------------------------------------------------------
class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str | None = Field(None, max_length=64, description="Echoed in the answer, for correlation.")


class Subscribe(_ClientMessage):
    """Start receiving ``channels``; with ``since``, first replay outbox events after that id."""

    type: Literal["subscribe"]
    channels: list[str] = Field(min_length=1, max_length=len(CHANNELS))
    since: int | None = Field(None, ge=0)


class Unsubscribe(_ClientMessage):
    """Stop receiving ``channels``."""

    type: Literal["unsubscribe"]
    channels: list[str] = Field(min_length=1, max_length=len(CHANNELS))


class Ping(_ClientMessage):
    """Ask for an immediate heartbeat."""

    type: Literal["ping"]


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
_CLIENT_MESSAGE: TypeAdapter[Subscribe | Unsubscribe | Ping] = TypeAdapter(ClientMessage)


class ProtocolError(Exception):
    """A client frame we refuse; answered with an ``error`` frame, the connection stays open."""

    def __init__(self, code: str, detail: str, *, ref: str | None = None, errors: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.code, self.detail, self.ref, self.errors = code, detail, ref, errors


def parse_client_message(raw: str | bytes) -> Subscribe | Unsubscribe | Ping:
    """Decode and validate one client frame, or raise ProtocolError."""
    if len(raw) > MAX_CLIENT_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"client frames are limited to {MAX_CLIENT_MESSAGE_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"not JSON: {exc}") from exc
    ref = data.get("ref") if isinstance(data, dict) and isinstance(data.get("ref"), str) else None
    try:
        message = _CLIENT_MESSAGE.validate_python(data)
    except ValidationError as exc:
        errors = [{"loc": _location(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise ProtocolError("bad_message", "invalid message", ref=ref, errors=errors) from exc
    if isinstance(message, Subscribe | Unsubscribe):
        unknown = [c for c in message.channels if c not in CHANNELS]
        if unknown:
            raise ProtocolError("unknown_channel", f"unknown channel(s): {', '.join(sorted(unknown))}", ref=ref)
    return message


def _location(loc: tuple) -> str:
    # Drop the discriminator tag pydantic puts first ("subscribe.channels" → "channels").
    parts = loc[1:] if len(loc) > 1 and loc[0] in ("subscribe", "unsubscribe", "ping") else loc
    return ".".join(str(p) for p in parts)


# -- events ----------------------------------------------------------------------------------------
def outbox_item(event_id: int, channel: str, body: dict[str, Any]) -> bytes:
    """One outbox event (trigger body ``{op, table, row}``), its row shaped as the HTTP API shows it
    (events/wire.py), serialised once."""
    table = body.get("table")
    return orjson.dumps({
        "id": event_id, "channel": channel, "op": body.get("op"), "table": table,
        "data": row_data(table, body.get("row")),
    })


def breaker_item(seq: int, data: dict[str, Any]) -> bytes:
    """One BreakerEvent from NATS (no outbox id; ``seq`` is the JetStream stream sequence)."""
    return orjson.dumps({"seq": seq, "channel": BREAKER_CHANNEL, "source": "nats", "data": data})


# -- frames ----------------------------------------------------------------------------------------
def ws_header(length: int) -> bytes:
    """Header of an unmasked, final text frame (server → client) carrying ``length`` bytes."""
    if length < 126:
        return bytes((0x81, length))
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


class Frame:
    """One server message, encoded once; ``wire`` is the complete WebSocket frame shared by all subscribers."""

    __slots__ = ("kind", "channel", "payload", "count", "ids", "items", "wire", "_text")

    def __init__(self, kind: str, payload: bytes, *, channel: str | None = None, count: int = 0,
                 ids: tuple[int | None, ...] = (), items: tuple[bytes, ...] = ()) -> None:
        self.kind = kind
        self.payload = payload
        self.channel = channel
        self.count = count
        self.ids = ids
        self.items = items
        self.wire = ws_header(len(payload)) + payload
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.payload.decode()
        return self._text

    def without(self, skip: set[int]) -> Frame | None:
        """The same events minus those whose id is in ``skip`` (None when nothing is left)."""
        keep = [(i, item) for i, item in zip(self.ids, self.items, strict=True) if i is None or i not in skip]
        if len(keep) == self.count:
            return self
        if not keep:
            return None
        return events_frame(self.channel, [i for i, _ in keep], [item for _, item in keep])

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Frame({self.kind!r}, {self.payload[:80]!r})"


def events_frame(channel: str | None, ids: list[int | None], items: list[bytes], *, replay: bool = False) -> Frame:
    """``event`` for one live item, else ``batch`` (``replay: true`` when read back from the outbox)."""
    if len(items) == 1 and not replay:
        payload = b'{"type":"event",' + items[0][1:]
        kind = "event"
    else:
        head = b'{"type":"batch","replay":true,"events":[' if replay else b'{"type":"batch","events":['
        payload = head + b",".join(items) + b"]}"
        kind = "batch"
    return Frame(kind, payload, channel=channel, count=len(items), ids=tuple(ids), items=tuple(items))


def _control(kind: str, **fields: Any) -> Frame:
    body = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
    return Frame(kind, orjson.dumps(body))


def welcome_frame(*, version: str, heartbeat_s: float, breaker_source: str, last_id: int | None) -> Frame:
    """First frame of every connection."""
    return _control("welcome", version=version, channels=list(CHANNELS), heartbeatS=heartbeat_s,
                    breakerStateSource=breaker_source, lastId=last_id)


def subscribed_frame(channels: list[str], *, since: int | None, replayed: int, ref: str | None) -> Frame:
    """Subscription acknowledged; live events for ``channels`` follow."""
    return _control("subscribed", channels=channels, since=since, replayed=replayed, ref=ref)


def unsubscribed_frame(channels: list[str], *, ref: str | None) -> Frame:
    return _control("unsubscribed", channels=channels, ref=ref)


def snapshot_frame(channel: str, items: list[dict[str, Any]], *, ref: str | None) -> Frame:
    """Current state of a state channel (``breaker_state``), sent before its live deltas."""
    return _control("snapshot", channel=channel, items=breaker_rows(items), ref=ref)


def resync_frame(reason: str, channels: list[str], *, detail: str | None = None, ref: str | None = None) -> Frame:
    """Events were or may have been missed: re-read state over HTTP (or resubscribe with ``since``)."""
    return _control("resync", reason=reason, channels=channels, detail=detail, ref=ref)


def error_frame(code: str, detail: str, *, ref: str | None = None, errors: list[dict] | None = None) -> Frame:
    return _control("error", code=code, detail=detail, ref=ref, errors=errors)


def heartbeat_frame(*, last_id: int | None, ref: str | None = None) -> Frame:
    """Liveness (every ``heartbeatS`` seconds, and in answer to ``ping``)."""
    return _control("heartbeat", at=iso_utc(datetime.now(UTC)), lastId=last_id, ref=ref)


def messages_counter(channel: str | None) -> Any:
    """The per-channel child of gordon_manager_ws_messages_sent_total (resolved once, reused)."""
    child = _COUNTERS.get(channel)
    if child is None:
        child = _COUNTERS[channel] = metrics.WS_MESSAGES_SENT.labels(channel=channel or "control")
    return child


_COUNTERS: dict[str | None, Any] = {}
