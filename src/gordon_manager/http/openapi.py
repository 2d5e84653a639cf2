"""The OpenAPI document, exact enough to generate a typed client from (issue 15, item 1).

FastAPI writes the paths and schemas from the routes and models; ``http.problems`` documents every
error as problem+json; this module then, once per app:

* declares the two tokens as apiKey security schemes and says per operation which one it needs:
  an operation whose dependencies include the ``Operator`` dependency (``http.auth.require_operator``,
  or a dependency marked ``OPERATOR_DEPENDENCY``) needs ``X-Operator-Token``; the probes and the API
  description (``http.edge.PUBLIC_PATHS``) need nothing; every other read may carry ``X-Read-Token``
  (needed when ``GORDON_MANAGER_READ_TOKEN`` is set) or an operator token, or nothing;
* declares the response headers the server sends (``X-Request-ID`` on every response, ``ETag``,
  ``Location``, ``Idempotent-Replayed``, ``X-Audit-Id``, ``Retry-After``);
* removes pydantic's automatic ``title`` of every property and parameter (component schemas keep
  their name as title), and writes the few decimal defaults pydantic renders with an exponent as
  plain decimal strings;
* declares the tags, and a ``JsonValue`` schema for the members that carry JSON of another service;
* documents on every operation the failures that are not the client's: 500 (a bug of ours) and,
  where the database is read, 503 ``database-unavailable`` with ``Retry-After``;
* names path parameters as the contract spells them (``/bots/{botId}``, like the errors do).

Operation ids are camelCase route names (``operation_id``), renamed where the name is poor
(``OPERATION_IDS``). Runtime behaviour is untouched: the edge middleware (``http.edge``) checks
the tokens, whatever the document says.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import fastapi.routing
import yaml
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic.alias_generators import to_camel

from gordon_manager.http.auth import OPERATOR_DEPENDENCY, require_operator
from gordon_manager.http.edge import PUBLIC_PATHS
from gordon_manager.http.models import sparse_model_names

# A route's `responses=` (status -> OpenAPI response object), as FastAPI types it
Responses = dict[int | str, dict[str, Any]]

OPERATOR_SCHEME = "operatorToken"
READ_SCHEME = "readToken"
SECURITY_SCHEMES: dict[str, Any] = {
    OPERATOR_SCHEME: {
        "type": "apiKey", "in": "header", "name": "X-Operator-Token",
        "description": "The operator token (`GORDON_MANAGER_OPERATOR_TOKEN`, the generated `<data dir>/operator-token`, "
                       "or a named token of `GORDON_MANAGER_OPERATOR_TOKENS_FILE`). Every mutation and `GET /config` "
                       "need it: missing → 401, wrong → 403. It also reads."},
    READ_SCHEME: {
        "type": "apiKey", "in": "header", "name": "X-Read-Token",
        "description": "The read token, needed by every read only when the server sets `GORDON_MANAGER_READ_TOKEN` "
                       "(missing → 401 `read-token-required`, wrong → 403); an operator token reads too."},
}
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{OPERATOR_SCHEME: []}]
READ_SECURITY: list[dict[str, list[str]]] = [{}, {READ_SCHEME: []}, {OPERATOR_SCHEME: []}]

SERVERS = [{"url": "/", "description": "The manager serving this document (`make run`: http://localhost:8083)."}]

TAGS: list[dict[str, str]] = [
    {"name": "ops", "description": "Probes, Prometheus metrics and the effective configuration."},
    {"name": "runs", "description": "Backtest and bot runs: status, statistics, equity, round trips; a bot's runs, "
                                    "equity and events."},
    {"name": "bots", "description": "Bot configs and their lifecycle (operator token on every change; audited)."},
    {"name": "deploys", "description": "Green/blue deploys of a bot (shadow compare, swap) and service deploys."},
    {"name": "risk", "description": "gordon-risk commands proxied by the manager (operator token; audited)."},
    {"name": "bff", "description": "Console helpers: Prometheus and AlertManager rollups, defaults of a new bot."},
    {"name": "console", "description": "Console reads: portfolio, performance, overlays, data health, exchange."},
    {"name": "backtests", "description": "Queue and cancel backtests (operator token); results are runs."},
    {"name": "strategies", "description": "The strategy registry: names, parameter schemas, defaults."},
    {"name": "events", "description": "Live events over the `/ws` WebSocket (described by asyncapi.yaml)."},
]

OPERATION_IDS: dict[str, str] = {
    # route name → operationId, where the camelCase route name would say too little
    "healthz": "getHealthz",
    "readyz": "getReadyz",
    "metrics_endpoint": "getMetrics",
    "config": "getConfig",
    "run_equity": "getRunEquity",
    "list_roundtrips": "listRunRoundtrips",
    "bot_equity": "getBotEquity",
    "audit": "listBotAudit",
    "clear_quarantine": "clearBotQuarantine",
    "deploy_status": "getDeployStatus",
    "force_promote": "forcePromoteDeploy",
    "service_deploy_status": "getServiceDeployStatus",
    "metrics_summary": "getBotMetricsSummary",
    "alerts_firing": "listFiringAlerts",
    "risk_resume": "resumeRisk",
    "overlay_summary": "getOverlaySummary",
    "source_health": "getSourceHealth",
    "data_status": "getDataStatus",
    "data_inventory": "getDataInventory",
    "backfill_jobs": "listBackfillJobs",
    "exchange_ping": "pingExchange",
    "get_strategies": "listStrategies",
}


def operation_id(route: APIRoute) -> str:
    """The route's operationId (FastAPI's ``generate_unique_id_function``): ``list_bots`` → ``listBots``."""
    return OPERATION_IDS.get(route.name) or to_camel(route.name)


# -- response headers ------------------------------------------------------------------------------
_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` when it is 1-64 of `A-Za-z0-9._-`, else a "
                       "generated one; also the `requestId` of a problem and of the log line.",
        "required": True, "schema": {"type": "string", "pattern": _ID_PATTERN}},
    "ETag": {
        "description": "The bot's version as a strong entity tag (`\"3\"`); send it back as `If-Match`.",
        "required": True, "schema": {"type": "string", "pattern": r'^"[0-9]+"$'}},
    "Location": {
        "description": "Where the created (or accepted) resource is read.",
        "required": True, "schema": {"type": "string", "format": "uri-reference"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request with the same "
                       "`Idempotency-Key` and body.",
        "schema": {"type": "string", "enum": ["true"]}},
    "X-Audit-Id": {
        "description": "Id of the `trading.operator_audit` row of this command (absent when the audit write failed).",
        "schema": {"type": "string", "pattern": r"^[0-9]+$"}},
    "Retry-After": {
        "description": "Seconds to wait before retrying, when the server knows.",
        "schema": {"type": "string", "pattern": r"^[0-9]+$"}},
}
RESPONSE_HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    # operationId → {status: headers} (X-Request-ID is on every response, Retry-After on every 429/503)
    "createBot": {"201": ("Location", "ETag", "Idempotent-Replayed")},
    "getBot": {"200": ("ETag",)},
    "updateBot": {"200": ("ETag",)},
    "patchBot": {"200": ("ETag",)},
    "deleteBot": {"202": ("ETag",)},
    "startBot": {"200": ("ETag",)},
    "pauseBot": {"200": ("ETag",)},
    "resumeBot": {"200": ("ETag",)},
    "stopBot": {"200": ("ETag",)},
    "createBacktest": {"202": ("Location",)},
    "createSweep": {"202": ("Location",)},
    "runSweepTrial": {"202": ("Location",)},
    "startDeploy": {"202": ("Location",)},
    "createServiceDeploy": {"202": ("Location",)},
    "resumeRisk": {"200": ("X-Audit-Id",), "4XX": ("X-Audit-Id",)},
    "emergencyFlatten": {"200": ("X-Audit-Id",), "4XX": ("X-Audit-Id",)},
    "bffEmergencyFlatten": {"200": ("X-Audit-Id",), "4XX": ("X-Audit-Id",)},
}

JSON_VALUE_SCHEMA: dict[str, Any] = {
    "title": "JsonValue",
    "description": "Any JSON value: what another service (or a component of this one) recorded, passed through. "
                   "(An array's items are any JSON value too; they are not declared as JsonValue because "
                   "TypeScript cannot resolve an array type that refers to itself through the schema map.)",
    "anyOf": [
        {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"},
        {"type": "array", "items": {}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
    ],
}
JSON_VALUE_REF = "#/components/schemas/JsonValue"

_READ_REFUSALS = {
    "401": "Read token missing (only when the server sets `GORDON_MANAGER_READ_TOKEN`)",
    "403": "Read token wrong (only when the server sets `GORDON_MANAGER_READ_TOKEN`)",
}
_OPERATOR_REFUSALS = {"401": "Missing operator token", "403": "Wrong operator token"}
_EDGE_REFUSALS = {  # http.edge answers these before any route runs
    "403": "The request's `Origin` is not allowed (`origin-not-allowed`, see GORDON_MANAGER_CORS_ORIGINS)",
    "421": "The `Host` is not served (`host-not-allowed`, see GORDON_MANAGER_ALLOWED_HOSTS)",
    "431": "Too many header fields, or too large a request head (`headers-too-large`)",
}
_BODY_REFUSALS = {  # writes: the edge reads the body, bounded in size and time
    "408": "The body did not arrive within GORDON_MANAGER_REQUEST_READ_TIMEOUT_S (`request-timeout`)",
    "413": "The body exceeds GORDON_MANAGER_MAX_BODY_BYTES (`body-too-large`, with `limit`)",
}
_SERVER_FAILURES = {  # any operation: http.problems answers these whatever the route
    "500": "Unexpected server error (`internal`): a bug of ours; quote the `requestId` when reporting it",
}
_DATABASE_FAILURE = ("The database is unavailable (`database-unavailable`: down, restarting or full); "
                     "retry after `Retry-After` seconds")
_NO_DATABASE = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.yaml", "/docs", "/redoc"})
_PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# -- which operation needs which token --------------------------------------------------------------
def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def needs_operator(route: Any) -> bool:
    """Whether ``route`` checks the operator token (its dependencies include the Operator dependency)."""
    return any(call is require_operator or getattr(call, OPERATOR_DEPENDENCY, False)
               for call in _calls(route.dependant))


def _documented_routes(app: FastAPI) -> Iterator[tuple[str, set[str], Any]]:
    """(path, methods, route-like with ``dependant``) of every route in the document.

    FastAPI ≥ 0.13x keeps included routers as such and resolves each route in its context
    (``iter_route_contexts``: prefix, router-level dependencies); older FastAPI copies the routes.
    """
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # pragma: no cover - older FastAPI
        for route in app.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                yield route.path_format, set(route.methods or ()), route
        return
    for context in iter_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context.path_format, set(context.methods), context


def security_of(app: FastAPI) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    """(path, method) → the security requirements of every documented operation."""
    out: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    for path, methods, route in _documented_routes(app):
        if path in PUBLIC_PATHS:
            requirement: list[dict[str, list[str]]] = []
        elif needs_operator(route):
            requirement = OPERATOR_SECURITY
        else:
            requirement = READ_SECURITY
        for method in methods:
            out[(path, method.lower())] = requirement
    return out


# -- the pass over the document ----------------------------------------------------------------------
def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS and isinstance(operation, dict):
                yield path, method, operation


def _document_security(spec: dict[str, Any], security: dict[tuple[str, str], list[dict[str, list[str]]]]) -> None:
    for path, method, operation in _operations(spec):
        requirement = security.get((path, method), READ_SECURITY)
        operation["security"] = [dict(r) for r in requirement]
        responses = operation.setdefault("responses", {})
        refusals = dict(_OPERATOR_REFUSALS if requirement is OPERATOR_SECURITY else
                        _READ_REFUSALS if requirement is READ_SECURITY else {})
        for status, text in _EDGE_REFUSALS.items():
            refusals[status] = f"{refusals[status]}; or: {text}" if status in refusals else text
        if method not in ("get", "head", "options"):
            refusals.update(_BODY_REFUSALS)
        refusals.update(_SERVER_FAILURES)
        if path not in _NO_DATABASE:
            own = responses.get("503")
            if own is not None and _DATABASE_FAILURE not in own.get("description", ""):
                own["description"] = f"{own['description']}; or: {_DATABASE_FAILURE}"
            refusals["503"] = _DATABASE_FAILURE
        for status, description in refusals.items():
            responses.setdefault(status, {"description": description, "content": dict(_PROBLEM_CONTENT)})
        operation["responses"] = dict(sorted(responses.items(), key=lambda kv: _status_order(kv[0])))
    schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.update(SECURITY_SCHEMES)
    spec.setdefault("servers", [dict(server) for server in SERVERS])


def _status_order(status: str) -> tuple[int, str]:
    return (int(status), "") if status.isdigit() else (int(status[0]) * 100 + 99, status)


def _document_headers(spec: dict[str, Any]) -> None:
    components = spec.setdefault("components", {})
    components["headers"] = {name: dict(header) for name, header in HEADERS.items()}
    ref = "#/components/headers/{}".format
    for _path, _method, operation in _operations(spec):
        extra = RESPONSE_HEADERS.get(operation.get("operationId", ""), {})
        for status, response in operation.get("responses", {}).items():
            names = ["X-Request-ID", *extra.get(status, ())]
            if status in ("429", "503"):
                names.append("Retry-After")
            headers = response.setdefault("headers", {})
            for name in names:
                headers.setdefault(name, {"$ref": ref(name)})


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                "unevaluatedProperties", "unevaluatedItems")
_EXPONENT = re.compile(r"^[-+]?[0-9]*\.?[0-9]+[eE][-+]?[0-9]+$")


def _plain_decimal(value: Any) -> Any:
    """A decimal string written with an exponent (``"1E-8"``) as a plain one (``"0.00000001"``)."""
    if isinstance(value, str) and _EXPONENT.match(value):
        try:
            return format(Decimal(value), "f")
        except InvalidOperation:  # pragma: no cover - the pattern only matches decimals
            return value
    return value


def clean_schema(schema: Any, *, keep_title: bool = False) -> None:
    """Drop the automatic ``title`` of ``schema`` and of every subschema (in place); plain decimal defaults."""
    if not isinstance(schema, dict):
        return
    if not keep_title:
        schema.pop("title", None)
    if "default" in schema:
        schema["default"] = _plain_decimal(schema["default"])
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for sub in schema[key].values():
                clean_schema(sub)
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for sub in schema[key]:
                clean_schema(sub)
    for key in _SCHEMA_ONES:
        clean_schema(schema.get(key))


def _clean_titles(spec: dict[str, Any]) -> None:
    for schema in spec.get("components", {}).get("schemas", {}).values():
        clean_schema(schema, keep_title=True)
    for _path, _method, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            clean_schema(parameter.get("schema"))
        bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
        for body in bodies:
            for media in body.get("content", {}).values():
                clean_schema(media.get("schema"))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


DECIMAL_STRING: dict[str, Any] = {"type": "string", "format": "decimal", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
"""What a ``Decimal`` of a response is on the wire: an exact decimal string in plain notation."""


def _is_decimal_alternatives(alternatives: list[Any]) -> bool:
    kinds = [alt.get("type") if isinstance(alt, dict) else None for alt in alternatives]
    return "number" in kinds and "string" in kinds and set(kinds) <= {"number", "string", "null"} and all(
        set(alt) <= {"type", "pattern"} for alt in alternatives if alt.get("type") == "string")


def _decimals_as_strings(schema: Any) -> None:
    """pydantic documents a ``Decimal`` as ``number | string`` (what it accepts); a response sends a string."""
    if not isinstance(schema, dict):
        return
    alternatives = schema.get("anyOf")
    if isinstance(alternatives, list) and _is_decimal_alternatives(alternatives):
        nullable = any(alt.get("type") == "null" for alt in alternatives)
        del schema["anyOf"]
        if nullable:
            schema["anyOf"] = [dict(DECIMAL_STRING), {"type": "null"}]
        else:
            schema.update(DECIMAL_STRING)
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for sub in schema[key].values():
                _decimals_as_strings(sub)
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for sub in schema[key]:
                _decimals_as_strings(sub)
    for key in _SCHEMA_ONES:
        _decimals_as_strings(schema.get(key))


def _request_schemas(spec: dict[str, Any]) -> set[str]:
    """Names of the component schemas a request (body or parameter) uses, directly or not."""
    schemas = spec.get("components", {}).get("schemas", {})
    roots = [[operation.get("requestBody"), operation.get("parameters")] for _p, _m, operation in _operations(spec)]
    pending = [ref.rsplit("/", 1)[1] for ref in _refs(roots) if ref.startswith("#/components/schemas/")]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending.extend(ref.rsplit("/", 1)[1] for ref in _refs(schemas[name]) if ref.startswith("#/components/schemas/"))
    return seen


def _response_decimals(spec: dict[str, Any]) -> None:
    """Every ``Decimal`` of a schema only responses use is documented as the decimal string it is sent as.

    A schema a request uses too keeps ``number | string``: a request may send either.
    """
    requests = _request_schemas(spec)
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name not in requests:
            _decimals_as_strings(schema)


_WRITTEN_BY_HAND = frozenset({"Problem", "JsonValue"})  # their `required` is what they say


def _response_members_required(spec: dict[str, Any]) -> None:
    """A model only responses use lists every member as required: the server sends them all (null when
    unset), except a ``SparseModel``'s, which sends only the members present."""
    requests, sparse = _request_schemas(spec), sparse_model_names()
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in requests or name in sparse or name in _WRITTEN_BY_HAND or not isinstance(schema.get("properties"), dict):
            continue
        schema["required"] = list(schema["properties"])


def _canonical_header(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-")) if name.islower() else name


def _header_names(spec: dict[str, Any]) -> None:
    """Header parameters spelled as HTTP documents them (``Idempotency-Key``; FastAPI writes ``idempotency-key``)."""
    for _path, _method, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "header":
                parameter["name"] = _canonical_header(parameter["name"])


def _declare_tags(spec: dict[str, Any]) -> None:
    used = {tag for _p, _m, operation in _operations(spec) for tag in operation.get("tags", ())}
    declared = [tag for tag in TAGS if tag["name"] in used]
    known = {tag["name"] for tag in declared}
    declared += [{"name": name} for name in sorted(used - known)]
    spec["tags"] = declared


_PATH_PARAMETER = re.compile(r"\{([a-z0-9_]+)\}")


def _camel_path_parameters(spec: dict[str, Any]) -> None:
    """Path parameters named as the contract spells them (``/bots/{botId}``; errors already say
    ``botId``). Only the document changes: the routes keep their Python names, so the metrics' ``route``
    labels stay; the URLs are the same."""
    paths = {}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS and isinstance(operation, dict):
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path":
                        parameter["name"] = to_camel(parameter["name"])
        paths[document_path(path)] = item
    spec["paths"] = paths


def document_path(route_path: str) -> str:
    """The document's path of a route's path (``/bots/{bot_id}`` → ``/bots/{botId}``)."""
    return _PATH_PARAMETER.sub(lambda m: "{" + to_camel(m.group(1)) + "}", route_path)


def complete(spec: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """The pass described in the module docstring, on a copy of ``spec`` (its schemas may be module constants)."""
    spec = copy.deepcopy(spec)
    _document_security(spec, security_of(app))
    _document_headers(spec)
    _clean_titles(spec)
    _response_decimals(spec)
    _response_members_required(spec)
    _header_names(spec)
    _declare_tags(spec)
    _camel_path_parameters(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    if JSON_VALUE_REF in set(_refs(spec)):
        schemas["JsonValue"] = JSON_VALUE_SCHEMA
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    ids = [operation.get("operationId") for _p, _m, operation in _operations(spec)]
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if duplicates:
        raise RuntimeError(f"operationIds used twice: {duplicates} (name the routes apart: `name=` or OPERATION_IDS)")
    return spec


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, after the routes exist)."""
    built: list[dict[str, Any]] = []
    previous = app.openapi

    def openapi() -> dict[str, Any]:
        if not built:
            built.append(complete(previous(), app))
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema


# -- YAML ----------------------------------------------------------------------------------------------
# Plain scalars a YAML 1.2 reader takes for a number (or null/bool) although PyYAML, a YAML 1.1 writer,
# leaves them unquoted: "1E-8", "0o17", ".5e3". Written quoted, every reader sees the same string.
_YAML12_NOT_STRING = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|null|Null|NULL|~|true|True|TRUE|false|False|FALSE)$")


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes the strings YAML 1.1 and 1.2 readers would not agree on."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if _YAML12_NOT_STRING.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def to_yaml(spec: dict[str, Any]) -> str:
    """The document as stable YAML (key order kept, unicode as is, strings quoted where readers differ)."""
    return yaml.dump(spec, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)

