"""HTTP routes of the bots domain: parse, authorise, call the service."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, overload

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from gordon_manager.bots import service
from gordon_manager.bots.schemas import (
    AuditPage,
    BotCreate,
    BotPage,
    BotRead,
    BotUpdate,
    DesiredState,
    Mode,
    ObservedState,
)
from gordon_manager.errors import ClientError, PreconditionRequired
from gordon_manager.http import media
from gordon_manager.http.auth import Operator
from gordon_manager.http.openapi import Responses
from gordon_manager.http.pagination import Pagination
from gordon_manager.observability.logging import request_id_var

router = APIRouter(tags=["bots"])

BotId = Annotated[int, Path(ge=1, le=2**62, description="Bot id.")]
_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,9})"?\s*$')
_IF_MATCH_DOC = 'Current version, e.g. `"3"` (from ETag / `version`).'
# What _ETAG reads, without the surrounding whitespace HTTP strips from a field value anyway.
_IF_MATCH_SCHEMA = {"type": "string", "pattern": r'^(W/)?"?[0-9]{1,9}"?$'}
IfMatch = Annotated[str | None, WithJsonSchema(_IF_MATCH_SCHEMA), Header(description=_IF_MATCH_DOC)]
Flatten = Annotated[bool, Query(description="Sell the position first (reduce-only market), bounded wait for its fill.")]
_PROBLEMS: Responses = {401: {"description": "Missing operator token"}, 403: {"description": "Wrong operator token"},
             404: {"description": "No such bot"},
             409: {"description": "Illegal transition, name taken, or a position in the way"},
             422: {"description": "Invalid body"}}
_IF_MATCH: Responses = {400: {"description": "Malformed If-Match"}, 412: {"description": "Stale If-Match (`currentVersion`)"}}
_BAD_CURSOR: Responses = {400: {"description": "Invalid cursor"}}
# PUT needs If-Match (428 without it, RFC 6585): documented as required, read by the handler so that a
# missing one is a 428 rather than FastAPI's 422.
_REQUIRED_IF_MATCH = {"parameters": [{"name": "If-Match", "in": "header", "required": True, "description": _IF_MATCH_DOC,
                                      "schema": _IF_MATCH_SCHEMA}]}


@overload
def parse_if_match(value: str | None, *, required: Literal[True]) -> int: ...
@overload
def parse_if_match(value: str | None, *, required: bool) -> int | None: ...
def parse_if_match(value: str | None, *, required: bool) -> int | None:
    """The version inside If-Match; 428 when required and missing, 400 when malformed."""
    if value is None:
        if required:
            raise PreconditionRequired("this update requires If-Match with the current version (ETag)")
        return None
    match = _ETAG.match(value)
    if not match:
        raise ClientError(f"If-Match must be a version like \"3\", got {value!r}")
    return int(match.group(1))


def _etag(bot: BotRead, response: Response) -> BotRead:
    response.headers["ETag"] = f'"{bot.version}"'
    return bot


@router.get("/bots", response_model=BotPage, summary="List bot configs", responses=_BAD_CURSOR)
async def list_bots(request: Request, page: Pagination,
                    desired_state: Annotated[DesiredState | None, Query(alias="desiredState")] = None,
                    observed_state: Annotated[ObservedState | None, Query(alias="observedState")] = None,
                    mode: Mode | None = None) -> BotPage:
    """Bots ordered by id, filtered by desired/observed state or mode; keyset-paginated."""
    rows = await service.list_bots(request.app.state.ctx.pool, after_id=page.int_key("bots"),
                                   desired_state=desired_state, observed_state=observed_state, mode=mode,
                                   limit=page.limit)
    return BotPage(items=[service.bot_read(r) for r in rows],
                   next_cursor=page.next_cursor("bots", rows, lambda r: {"id": r["id"]}))


@router.post("/bots", status_code=201, response_model=BotRead, summary="Create a bot config",
             responses={**_PROBLEMS, 201: {"description": "Created (or replayed for a reused Idempotency-Key)"}})
async def create_bot(request: Request, body: BotCreate, actor: Operator,
                     idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None) -> JSONResponse:
    """Create a bot; an `Idempotency-Key` makes retries return the first response."""
    ctx = request.app.state.ctx
    content, replayed = await service.create_bot(ctx.pool, body=body, settings=ctx.settings, actor=actor,
                                                 request_id=request_id_var.get(), idempotency_key=idempotency_key)
    headers = {"Location": f"/bots/{content['id']}", "ETag": f'"{content["version"]}"'}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(content, status_code=201, headers=headers)


@router.get("/bots/{bot_id}", response_model=BotRead, summary="Get a bot config", responses={404: _PROBLEMS[404]})
async def get_bot(request: Request, response: Response, bot_id: BotId) -> BotRead:
    """The bot's config and observed status; ETag carries its version."""
    async with request.app.state.ctx.pool.acquire() as conn:
        row = await service.get_bot_or_raise(conn, bot_id=bot_id)
    return _etag(service.bot_read(row), response)


@router.put("/bots/{bot_id}", response_model=BotRead, summary="Update a bot config",
            responses={**_PROBLEMS, **_IF_MATCH, 428: {"description": "If-Match missing"}},
            openapi_extra=_REQUIRED_IF_MATCH)
async def update_bot(request: Request, response: Response, bot_id: BotId, body: BotUpdate, actor: Operator,
                     if_match: Annotated[str | None, Header(include_in_schema=False)] = None) -> BotRead:
    """Replace the spec; requires `If-Match` with the current version."""
    expected = parse_if_match(if_match, required=True)
    ctx = request.app.state.ctx
    bot = await service.update_bot(ctx.pool, bot_id=bot_id, body=body, expected_version=expected,
                                   settings=ctx.settings, actor=actor, request_id=request_id_var.get())
    return _etag(bot, response)


def _patch_schema() -> dict[str, Any]:
    """The body of PATCH /bots/{id}: the PUT body with every member optional (RFC 7396 merge patch).

    Built from ``BotUpdate``'s own schema so the two never drift: a member with a default may be
    ``null`` (removed: the default again), a required one may not; a label value may be ``null``
    (that label is removed). No ``default`` is kept: an absent member of a patch changes nothing.
    """
    schema = _without_titles_and_defaults(
        BotUpdate.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}"))
    schema.pop("$defs", None)  # every model BotUpdate uses is a component already (PUT /bots/{id})
    required = set(schema.pop("required", ()))
    properties = {}
    for name, prop in schema["properties"].items():
        if name == "labels":  # no maxProperties: a patch may remove some labels and add as many (the merged
            # labels are limited, a 422 naming `labels` above)
            prop = {**{k: v for k, v in prop.items() if k != "maxProperties"},
                    "additionalProperties": {"anyOf": [prop["additionalProperties"], {"type": "null"}]},
                    "description": "Merged label by label: a value sets that label, `null` removes it."}
        if name == "labels" and name not in required:
            prop = {"anyOf": [{k: v for k, v in prop.items() if k != "description"}, {"type": "null"}],
                    "description": prop["description"] + " `labels: null` removes them all."}
        elif name not in required:
            described = {key: prop.pop(key) for key in ("description", "examples") if key in prop}
            alternatives = prop["anyOf"] if set(prop) == {"anyOf"} else [prop]
            if {"type": "null"} not in alternatives:
                alternatives = [*alternatives, {"type": "null"}]
            prop = {"anyOf": alternatives, **described}
            prop["description"] = (prop.get("description", "") + " `null` restores the default.").strip()
        properties[name] = prop
    return {**schema, "title": "BotPatch", "properties": properties,
            "description": "A JSON Merge Patch (RFC 7396) of the spec: members present replace (objects merge "
                           "key by key), `null` removes, members absent are left as they are."}


def _without_titles_and_defaults(node: Any, *, names: bool = False) -> Any:
    """A copy of a JSON schema without ``title``/``default`` keywords (``names``: a map of property names)."""
    if isinstance(node, list):
        return [_without_titles_and_defaults(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: _without_titles_and_defaults(value, names=key in ("properties", "$defs") and not names)
            for key, value in node.items() if names or key not in ("title", "default")}


_PATCH_BODY = {"requestBody": {"required": True, "content": {
    media_type: {"schema": _patch_schema()} for media_type in media.PATCH_TYPES}},
    **_REQUIRED_IF_MATCH}


@router.patch("/bots/{bot_id}", response_model=BotRead, summary="Patch a bot config (JSON Merge Patch)",
              responses={**_PROBLEMS, **_IF_MATCH, 428: {"description": "If-Match missing"}},
              openapi_extra=_PATCH_BODY)
async def patch_bot(request: Request, response: Response, bot_id: BotId, actor: Operator,
                    if_match: Annotated[str | None, Header(include_in_schema=False)] = None) -> BotRead:
    """Change part of the spec with a JSON Merge Patch (RFC 7396, `application/merge-patch+json` or
    `application/json`); requires `If-Match` with the current version.

    Members sent replace, objects (`labels`, `params`, `execution`) merge key by key, `null` removes
    (a label; or a field with a default, which gets its default back); members not sent are left as
    they are. The merged spec is validated and audited exactly like a `PUT`.
    """
    expected = parse_if_match(if_match, required=True)
    patch = await _json_object(request)
    ctx = request.app.state.ctx
    bot = await service.patch_bot(ctx.pool, bot_id=bot_id, patch=patch, expected_version=expected,
                                  settings=ctx.settings, actor=actor, request_id=request_id_var.get())
    return _etag(bot, response)


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: malformed JSON is the usual 400, anything but an object a 422."""
    body = await request.body()
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error",
                                       "input": {}}]) from None
    if not isinstance(value, dict):
        raise RequestValidationError([{"type": "dict_type" if body else "missing", "loc": ("body",),
                                       "msg": "A merge patch of a bot is a JSON object" if body else "Field required",
                                       "input": value}])
    return value


@router.delete("/bots/{bot_id}", status_code=202, response_model=BotRead, summary="Delete a bot config",
               responses={**_PROBLEMS, **_IF_MATCH})
async def delete_bot(request: Request, response: Response, bot_id: BotId, actor: Operator,
                     if_match: IfMatch = None, flatten: Flatten = False) -> BotRead:
    """Desired state → stopped; the reconciler removes the workload, then the row is soft-deleted.

    A live bot holding a position is a 409 naming it, unless `flatten=true`: the bot then sells its
    position (reduce-only market) before it exits.
    """
    bot = await service.delete_bot(request.app.state.ctx.pool, bot_id=bot_id, actor=actor,
                                   request_id=request_id_var.get(),
                                   expected_version=parse_if_match(if_match, required=False), flatten=flatten)
    return _etag(bot, response)


_LIFECYCLE_DOC = {
    "start": "Start a bot (stopped → running). It recovers its position and open orders, then trades new bars.",
    "pause": "Pause a bot (running → paused): no new entries; exits, brackets and cancels go on.",
    "resume": "Resume a bot (paused → running); a replay continues where it paused.",
    "stop": "Stop a bot (running|paused → stopped): its open orders are cancelled, its position is kept and "
            "recovered at the next start; with `flatten=true` it first sells the position (reduce-only market) "
            "and waits a bounded time for the fill.",
}


def _lifecycle_route(action: str, summary: str):
    async def handler(request: Request, response: Response, bot_id: BotId, actor: Operator,
                      if_match: IfMatch = None) -> BotRead:
        ctx = request.app.state.ctx
        bot = await service.lifecycle(ctx.pool, bot_id=bot_id, action=action, actor=actor,
                                      request_id=request_id_var.get(), settings=ctx.settings,
                                      expected_version=parse_if_match(if_match, required=False))
        return _etag(bot, response)

    async def stop_handler(request: Request, response: Response, bot_id: BotId, actor: Operator,
                           if_match: IfMatch = None, flatten: Flatten = False) -> BotRead:
        ctx = request.app.state.ctx
        bot = await service.lifecycle(ctx.pool, bot_id=bot_id, action=action, actor=actor,
                                      request_id=request_id_var.get(), settings=ctx.settings, flatten=flatten,
                                      expected_version=parse_if_match(if_match, required=False))
        return _etag(bot, response)

    chosen = stop_handler if action == "stop" else handler
    chosen.__name__ = f"{action}_bot"
    chosen.__doc__ = f"{_LIFECYCLE_DOC[action]} Only sets the desired state; 409 names the current state when illegal."
    router.add_api_route(f"/bots/{{bot_id}}/{action}", chosen, methods=["POST"], response_model=BotRead,
                         summary=summary, responses={**_PROBLEMS, **_IF_MATCH}, name=f"{action}_bot")


_lifecycle_route("start", "Start a bot (stopped → running)")
_lifecycle_route("pause", "Pause a bot (running → paused)")
_lifecycle_route("resume", "Resume a bot (paused → running)")
_lifecycle_route("stop", "Stop a bot (running|paused → stopped)")


@router.post("/bots/{bot_id}/clear-quarantine", response_model=BotRead, summary="Clear reconciler quarantine",
             responses=_PROBLEMS)
async def clear_quarantine(request: Request, bot_id: BotId, actor: Operator) -> BotRead:
    """Lift the quarantine of a crash-looping bot so the reconciler may start it again."""
    return await service.clear_quarantine(request.app.state.ctx.pool, bot_id=bot_id, actor=actor,
                                          request_id=request_id_var.get())


@router.get("/bots/{bot_id}/audit", response_model=AuditPage, summary="Audit log of a bot config",
            responses={404: _PROBLEMS[404], **_BAD_CURSOR})
async def audit(request: Request, bot_id: BotId, page: Pagination) -> AuditPage:
    """Who changed what and when, newest first; keyset-paginated."""
    rows = await service.audit_page(request.app.state.ctx.pool, bot_id=bot_id,
                                    before_id=page.int_key(f"audit:{bot_id}"), limit=page.limit)
    return AuditPage(items=[service.audit_read(r) for r in rows],
                     next_cursor=page.next_cursor(f"audit:{bot_id}", rows, lambda r: {"id": r["id"]}))
