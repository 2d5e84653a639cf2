"""Rules of the bots domain: validation, optimistic concurrency, lifecycle transitions, audit.

Every change and its audit row commit in one transaction. Lifecycle actions only set
``desired_state``; the reconciler converges the workloads.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from gordon_manager.botrunner.labels import label_errors
from gordon_manager.bots import repo
from gordon_manager.bots.schemas import (
    AuditRead,
    BotCreate,
    BotRead,
    BotSpec,
    BotStatusRead,
    BotUpdate,
    PositionRead,
)
from gordon_manager.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.http.casing import camelize, snakify
from gordon_manager.http.limits import check_sizes
from gordon_manager.http.problems import field_path
from gordon_manager.http.values import plain_decimal_strings
from gordon_manager.runtimes.payload import image_allowed
from gordon_manager.settings import Settings
from gordon_manager.strategies import InvalidParams, UnknownStrategy, get_strategy

IDEMPOTENCY_SCOPE = "POST /bots"
NO_NATS = ("a live bot sends its orders to gordon-executor over NATS JetStream: set GORDON_BUS_NATS_URL "
           "on the manager (bots inherit it)")
RUNNING = frozenset({"running", "paused"})
USER_KEYED = frozenset({"labels"})  # fields whose keys a user chose: never re-cased
SPEC_FIELDS = ("strategy", "symbol", "interval", "params", "execution", "mode", "image")
SNAPSHOT_FIELDS = ("name", *SPEC_FIELDS, "desired_state", "labels", "shadow_of", "version", "spec_version",
                   "flatten_on_stop")

# action -> (states it may start from, desired state it sets)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"stopped"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "stop": (frozenset({"running", "paused"}), "stopped"),
}


def validate_spec(spec: BotSpec, settings: Settings) -> dict[str, Any]:
    """Normalised column values for ``spec``; Unprocessable naming what is wrong."""
    check_sizes(settings, labels=spec.labels, params=spec.params, execution=spec.execution)
    try:
        strategy = get_strategy(spec.strategy)
        params = strategy.parse_params(snakify(spec.params))
    except UnknownStrategy as exc:
        raise Unprocessable(str(exc), extra={"errors": [{"field": "strategy", "message": str(exc)}]}) from exc
    except InvalidParams as exc:
        errors = [{"field": field_path("params", tuple(e.get("loc", ()))), "message": e.get("msg", "")}
                  for e in exc.errors]
        raise Unprocessable(str(exc), extra={"errors": errors}) from exc
    try:
        execution = ExecutionConfig.model_validate(snakify(spec.execution))
    except ValidationError as exc:
        errors = [{"field": field_path("execution", e["loc"]), "message": e["msg"]}
                  for e in exc.errors(include_url=False)]
        raise Unprocessable("invalid execution settings", extra={"errors": errors}) from exc
    label_problems = label_errors(dict(spec.labels), mode=spec.mode)
    if label_problems:
        raise Unprocessable("invalid labels: " + "; ".join(e["message"] for e in label_problems),
                            extra={"errors": label_problems})
    if spec.mode == "live" and not settings.bus_nats_url:
        raise Unprocessable(NO_NATS, extra={"errors": [{"field": "mode", "message": "live needs GORDON_BUS_NATS_URL"}]})
    image = spec.image or settings.bot_image
    allowed = tuple(p.strip() for p in settings.allowed_images.split(",") if p.strip())
    if not image_allowed(image, allowed):  # the runtimes' check: whole repository names, parsed
        raise Unprocessable(f"image {image!r} is not from an allowed repository ({', '.join(allowed)})",
                            extra={"errors": [{"field": "image", "message": "repository not allowed"}]})
    return {
        "name": spec.name, "strategy": strategy.name, "symbol": spec.symbol, "interval": spec.interval,
        "params": params.model_dump(mode="json"), "execution": _plain_decimals(execution.model_dump()),
        "mode": spec.mode, "image": image, "labels": dict(spec.labels),
    }


def _plain_decimals(values: dict[str, Any]) -> dict[str, Any]:
    """Decimals as plain strings ("0.00000001", not "1E-8"): exact, and readable in the console."""
    return {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in values.items()}


def config_fields(row: Any) -> dict[str, Any]:
    """The BotRead fields of a ``trading.bot_configs`` row (GET /bots/{id}, and /ws ``bot_config_changed``):
    params and execution camelCase (their keys are ours), labels as the user wrote them."""
    data = dict(row)
    data["params"] = camelize(data["params"] or {})
    data["execution"] = camelize(plain_decimal_strings(data["execution"] or {}))
    return data


def bot_read(row: asyncpg.Record) -> BotRead:
    """API model of a joined config+status row."""
    data = config_fields(row)
    status = data.pop("status", None)
    position = data.pop("position", None)
    return BotRead(**data, status=BotStatusRead.model_validate(status) if status else None,
                   position=PositionRead.model_validate(position) if position else None)


def audit_read(row: asyncpg.Record) -> AuditRead:
    data = dict(row)
    for key in ("before", "after", "diff"):
        # the snapshot's field names are ours; the keys of its labels are the user's
        data[key] = camelize(data[key], keep=USER_KEYED) if data[key] is not None else None
    data["diff"] = data["diff"] or {}
    return AuditRead(**data)


def snapshot(row: asyncpg.Record | dict | None) -> dict[str, Any] | None:
    """The audited fields of a config row."""
    if row is None:
        return None
    return {field: row.get(field) if isinstance(row, dict) else row[field] for field in SNAPSHOT_FIELDS}


def diff(before: dict | None, after: dict | None) -> dict[str, Any]:
    """{field: {before, after}} for every audited field that changed."""
    before, after = before or {}, after or {}
    return {k: {"before": before.get(k), "after": after.get(k)}
            for k in SNAPSHOT_FIELDS if before.get(k) != after.get(k) and k not in ("version",)}


async def _audit(conn: asyncpg.Connection, *, bot_id: int, actor: str, action: str, before, after,
                 request_id: str | None) -> None:
    after_snap = snapshot(after)
    before_snap = snapshot(before)
    current = after_snap or before_snap
    assert current is not None  # every audited action has a row before or after it
    await repo.insert_audit(conn, bot_id=bot_id, actor=actor, action=action,
                            version=current["version"], before=before_snap, after=after_snap,
                            diff=diff(before_snap, after_snap), request_id=request_id)


def request_fingerprint(body: BotCreate) -> str:
    """A stable hash of a create request (to detect a reused Idempotency-Key with another body)."""
    return hashlib.sha256(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


async def create_bot(pool: asyncpg.Pool, *, body: BotCreate, settings: Settings, actor: str,
                     request_id: str | None, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """Create a bot; returns (response body, replayed). Same key + same body → the stored response."""
    values = validate_spec(body, settings)
    values.update(desired_state=body.desired_state, shadow_of=body.shadow_of)
    fingerprint = request_fingerprint(body)
    async with pool.acquire() as conn, conn.transaction():
        if idempotency_key is not None:
            if not await repo.claim_idempotency_key(conn, scope=IDEMPOTENCY_SCOPE, key=idempotency_key,
                                                    request_hash=fingerprint):
                stored = await repo.get_idempotency_key(conn, scope=IDEMPOTENCY_SCOPE, key=idempotency_key)
                assert stored is not None  # the claim failed: the owner's row is committed
                if stored["request_hash"] != fingerprint:
                    raise Unprocessable("this Idempotency-Key was already used with a different request body")
                return stored["response"], True
        if body.shadow_of is not None:
            await _check_shadow_target(conn, body, body.shadow_of)
        try:
            row = await repo.insert_bot(conn, values=values, actor=actor)
        except asyncpg.UniqueViolationError as exc:
            raise Conflict(f"a bot named {body.name!r} already exists") from exc
        await _audit(conn, bot_id=row["id"], actor=actor, action="create", before=None, after=row,
                     request_id=request_id)
        response = bot_read(await repo.get_bot(conn, bot_id=row["id"])).model_dump(mode="json", by_alias=True)
        if idempotency_key is not None:
            await repo.store_idempotent_response(conn, scope=IDEMPOTENCY_SCOPE, key=idempotency_key,
                                                 status_code=201, response=response)
    return response, False


async def _check_shadow_target(conn: asyncpg.Connection, body: BotCreate, shadow_of: int) -> None:
    if body.mode != "shadow":
        raise Unprocessable("shadowOf requires mode 'shadow'",
                            extra={"errors": [{"field": "mode", "message": "must be shadow when shadowOf is set"}]})
    if not await repo.get_bot(conn, bot_id=shadow_of):
        raise Unprocessable(f"shadowOf: bot {body.shadow_of} does not exist",
                            extra={"errors": [{"field": "shadowOf", "message": "no such bot"}]})


async def require_known_bot(conn: asyncpg.Connection, *, bot_id: int) -> None:
    """NotFound unless the bot was ever created (a deleted bot's history stays readable)."""
    if not await repo.bot_known(conn, bot_id=bot_id):
        raise NotFound(f"bot {bot_id} does not exist")


async def require_live_bot(conn: asyncpg.Connection, *, bot_id: int) -> None:
    """NotFound unless the bot exists and is not deleted."""
    if not await repo.bot_exists(conn, bot_id=bot_id):
        raise NotFound(f"bot {bot_id} does not exist")


async def list_bots(pool: asyncpg.Pool, *, after_id: int | None, desired_state: str | None,
                    observed_state: str | None, mode: str | None, limit: int) -> list[asyncpg.Record]:
    """A page of bots ordered by id, after ``after_id``."""
    async with pool.acquire() as conn:
        return await repo.list_bots(conn, after_id=after_id, desired_state=desired_state,
                                    observed_state=observed_state, mode=mode, limit=limit)


async def audit_page(pool: asyncpg.Pool, *, bot_id: int, before_id: int | None, limit: int) -> list[asyncpg.Record]:
    """A page of the bot's audit log, newest first (NotFound for a bot never created)."""
    async with pool.acquire() as conn:
        await require_known_bot(conn, bot_id=bot_id)
        return await repo.list_audit(conn, bot_id=bot_id, before_id=before_id, limit=limit)


async def get_bot_or_raise(conn: asyncpg.Connection, *, bot_id: int) -> asyncpg.Record:
    """The bot row, or NotFound."""
    row = await repo.get_bot(conn, bot_id=bot_id)
    if row is None:
        raise NotFound(f"bot {bot_id} does not exist")
    return row


async def _lock_or_raise(conn: asyncpg.Connection, bot_id: int) -> asyncpg.Record:
    row = await repo.lock_bot(conn, bot_id=bot_id)
    if row is None:
        raise NotFound(f"bot {bot_id} does not exist")
    return row


def _check_version(row: asyncpg.Record, expected: int | None) -> None:
    if expected is not None and row["version"] != expected:
        raise PreconditionFailed(f"bot {row['id']} is at version {row['version']}, not {expected}; "
                                 "re-read it and retry", extra={"currentVersion": row["version"]})


async def update_bot(pool: asyncpg.Pool, *, bot_id: int, body: BotSpec, expected_version: int, settings: Settings,
                     actor: str, request_id: str | None) -> BotRead:
    """Replace the spec when ``expected_version`` is current (412 otherwise)."""
    values = validate_spec(body, settings)
    async with pool.acquire() as conn, conn.transaction():
        before = await _lock_or_raise(conn, bot_id)
        _check_version(before, expected_version)
        return await _write_spec(conn, before=before, values=values, expected_version=expected_version, actor=actor,
                                 action="update", request_id=request_id)


async def patch_bot(pool: asyncpg.Pool, *, bot_id: int, patch: dict[str, Any], expected_version: int,
                    settings: Settings, actor: str, request_id: str | None) -> BotRead:
    """Apply a JSON Merge Patch (RFC 7396) to the spec when ``expected_version`` is current (412 otherwise).

    The patch is merged into the spec as ``GET /bots/{id}`` shows it (camelCase, ``params`` and
    ``execution`` complete): a member replaces, an object merges key by key (``labels`` too), ``null``
    removes (a field with a default gets it back; a required one is then a 422). The merged spec is
    then validated and written exactly like a ``PUT``.
    """
    _check_patch(patch)
    async with pool.acquire() as conn, conn.transaction():
        before = await _lock_or_raise(conn, bot_id)
        _check_version(before, expected_version)
        current = bot_read(await repo.get_bot(conn, bot_id=bot_id)).model_dump(mode="json", by_alias=True)
        values = validate_spec(_spec_from(merge_patch({key: current[key] for key in SPEC_KEYS}, patch)), settings)
        return await _write_spec(conn, before=before, values=values, expected_version=expected_version, actor=actor,
                                 action="patch", request_id=request_id)


SPEC_KEYS = tuple(field.alias or name for name, field in BotUpdate.model_fields.items())
"""The members of a bot's spec on the wire: what a PUT replaces and a PATCH merges into."""
_PATCH_BASE = {"name": "patch-check", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m"}
"""A valid spec to merge a patch into before anything is read: what fails then is the patch's own
(a type, a pattern, an unknown or a removed required member), a 422 whatever the bot's version."""


def _check_patch(patch: dict[str, Any]) -> None:
    """The patch's own members, before anything is read (like a PUT's body, before its If-Match)."""
    _spec_from(merge_patch(_PATCH_BASE, patch))
    execution = patch.get("execution")
    nulls = [key for key, value in execution.items() if value is None] if isinstance(execution, dict) else []
    if nulls:  # an execution setting is a value (its default is in GET /bff/bot-defaults), never null
        errors = [{"field": f"execution.{key}", "message": "an execution setting cannot be null: send its value "
                                                           "(`execution: null` restores every default)",
                   "type": "none_forbidden"} for key in nulls]
        raise Unprocessable("the patch is not valid: " + ", ".join(e["field"] for e in errors),
                            extra={"errors": errors})


def _spec_from(document: dict[str, Any]) -> BotUpdate:
    """The spec a merged document describes; Unprocessable naming each invalid field."""
    try:
        return BotUpdate.model_validate(document)
    except ValidationError as exc:
        errors = [{"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False)]
        raise Unprocessable("the patched spec is not valid: " + ", ".join(e["field"] for e in errors),
                            extra={"errors": errors}) from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 MergePatch(target, patch)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def _write_spec(conn: asyncpg.Connection, *, before: asyncpg.Record, values: dict[str, Any],
                      expected_version: int, actor: str, action: str, request_id: str | None) -> BotRead:
    """Write a validated spec over the locked row ``before`` and audit it (PUT and PATCH)."""
    bot_id = before["id"]
    if values["symbol"] != before["symbol"] or values["mode"] != before["mode"]:
        await _refuse_if_holding(conn, bot_id, "change its symbol or mode")
    spec_changed = any(before[f] != values[f] for f in SPEC_FIELDS)
    try:
        after = await repo.update_spec(conn, bot_id=bot_id, expected_version=expected_version, values=values,
                                       spec_changed=spec_changed)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"a bot named {values['name']!r} already exists") from exc
    await _audit(conn, bot_id=bot_id, actor=actor, action=action, before=before, after=after,
                 request_id=request_id)
    return bot_read(await repo.get_bot(conn, bot_id=bot_id))


async def _refuse_if_holding(conn: asyncpg.Connection, bot_id: int, action: str) -> None:
    """409 naming the position when the bot's ledger holds a position or open orders."""
    ledger = await repo.get_ledger(conn, bot_id=bot_id)
    if ledger is not None and (ledger["qty"] != 0 or ledger["open_orders"]):
        position = {"mode": ledger["mode"], "symbol": ledger["symbol"], "qty": format(ledger["qty"], "f"),
                    "openOrders": ledger["open_orders"]}
        raise Conflict(f"cannot {action}: bot {bot_id} holds {position['qty']} {ledger['symbol']} "
                       f"({ledger['mode']}) and {ledger['open_orders']} open orders; stop it with ?flatten=true first",
                       extra={"position": position})


async def _check_can_flatten(conn: asyncpg.Connection, bot_id: int) -> None:
    """Flattening is done by the bot on its way out: it must be running to do it."""
    status = await repo.get_status(conn, bot_id=bot_id)
    observed = status["observed_state"] if status is not None else "pending"
    if observed not in RUNNING:
        raise Conflict(f"cannot flatten bot {bot_id}: it is not running (observed {observed!r}), and the bot "
                       "itself sells its position when it stops", extra={"currentState": observed})


async def lifecycle(pool: asyncpg.Pool, *, bot_id: int, action: str, actor: str, request_id: str | None,
                    expected_version: int | None = None, settings: Settings | None = None,
                    flatten: bool = False) -> BotRead:
    """start | pause | resume | stop: set the desired state when the transition is legal (409 otherwise)."""
    allowed_from, target = TRANSITIONS[action]
    async with pool.acquire() as conn, conn.transaction():
        before = await _lock_or_raise(conn, bot_id)
        _check_version(before, expected_version)
        current = before["desired_state"]
        if before["delete_requested_at"] is not None:
            raise Conflict(f"bot {bot_id} is being deleted", extra={"currentState": current})
        if current not in allowed_from:
            raise Conflict(f"cannot {action} bot {bot_id}: its desired state is {current!r}",
                           extra={"currentState": current})
        if target == "running":
            status = await repo.get_status(conn, bot_id=bot_id)
            if status is not None and status["quarantined"]:
                raise Conflict(f"bot {bot_id} is quarantined ({status['quarantine_reason']}); "
                               "POST /bots/{id}/clear-quarantine first", extra={"currentState": "quarantined"})
            if before["mode"] == "live" and settings is not None and not settings.bus_nats_url:
                raise Conflict(f"cannot {action} live bot {bot_id}: {NO_NATS}", extra={"currentState": current})
        if flatten:
            await _check_can_flatten(conn, bot_id)
        after = await repo.set_desired_state(conn, bot_id=bot_id, desired_state=target, flatten=flatten)
        await _audit(conn, bot_id=bot_id, actor=actor, action=action,
                     before=before, after=after, request_id=request_id)
        return bot_read(await repo.get_bot(conn, bot_id=bot_id))


async def delete_bot(pool: asyncpg.Pool, *, bot_id: int, actor: str, request_id: str | None,
                     expected_version: int | None = None, flatten: bool = False) -> BotRead:
    """Request deletion: desired state stopped; the reconciler removes the workload, then soft-deletes.

    A live bot that holds a position is deleted only with ``flatten`` (the bot sells it first).
    """
    async with pool.acquire() as conn, conn.transaction():
        before = await _lock_or_raise(conn, bot_id)
        _check_version(before, expected_version)
        if before["delete_requested_at"] is None:
            if flatten:
                await _check_can_flatten(conn, bot_id)
            elif before["mode"] == "live":
                await _refuse_if_holding(conn, bot_id, "delete it")
            after = await repo.set_desired_state(conn, bot_id=bot_id, desired_state="stopped", delete=True,
                                                 flatten=flatten)
            await _audit(conn, bot_id=bot_id, actor=actor, action="delete",
                         before=before, after=after, request_id=request_id)
        return bot_read(await repo.get_bot(conn, bot_id=bot_id))


async def clear_quarantine(pool: asyncpg.Pool, *, bot_id: int, actor: str, request_id: str | None) -> BotRead:
    """Lift a quarantine (409 when the bot is not quarantined)."""
    async with pool.acquire() as conn, conn.transaction():
        before = await _lock_or_raise(conn, bot_id)
        status = await repo.get_status(conn, bot_id=bot_id)
        if status is None or not status["quarantined"]:
            raise Conflict(f"bot {bot_id} is not quarantined", extra={"currentState": before["desired_state"]})
        await repo.clear_quarantine(conn, bot_id=bot_id)
        await repo.insert_audit(conn, bot_id=bot_id, actor=actor, action="clear-quarantine",
                                version=before["version"], before={"quarantineReason": status["quarantine_reason"]},
                                after={"quarantined": False}, diff={"quarantined": {"before": True, "after": False}},
                                request_id=request_id)
        await repo.insert_bot_event(conn, bot_id=bot_id, kind="quarantine_cleared", level="info",
                                    message=f"quarantine cleared by {actor}", data={})
        return bot_read(await repo.get_bot(conn, bot_id=bot_id))
