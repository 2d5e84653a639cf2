"""The OpenAPI document is exact enough to generate a typed client from (issue 15, item 1).

Security schemes on the operations that need them, camelCase operationIds, response headers declared,
no `-Input`/`-Output` twins, no automatic titles, no open object but a strategy's params, decimals of
responses as strings, YAML that YAML 1.1 and 1.2 readers read alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from pydantic import SecretStr

from gordon_manager.app import create_app
from gordon_manager.http import openapi
from gordon_manager.settings import Settings
from tests.conftest import TEST_OPERATOR_TOKEN

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "patch")
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
# The members whose JSON object is open on purpose: a strategy's parameters (typed by its paramsSchema).
OPEN_ON_PURPOSE = {"params", "defaultParams", "before", "after"}


@pytest.fixture(scope="module")
def spec() -> dict:
    settings = Settings(database_url=SecretStr("postgresql://unused/unused"), operator_token=SecretStr(TEST_OPERATOR_TOKEN))
    return create_app(settings).openapi()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_tokens_are_security_schemes(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes["operatorToken"] == {**schemes["operatorToken"], "type": "apiKey", "in": "header",
                                        "name": "X-Operator-Token"}
    assert schemes["readToken"] == {**schemes["readToken"], "type": "apiKey", "in": "header", "name": "X-Read-Token"}
    assert "security" not in spec  # said per operation


def test_every_operation_says_which_token_it_takes(spec):
    for method, path, operation in operations(spec):
        security = operation["security"]
        if (method, path) in PUBLIC:
            assert security == [], (method, path)
        elif method != "get" or path == "/config":
            assert security == [{"operatorToken": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
        else:
            assert security == [{}, {"readToken": []}, {"operatorToken": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_operation_ids_are_camel_case_and_unique(spec):
    ids = [operation["operationId"] for _m, _p, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    by_route = {(method, path): operation["operationId"] for method, path, operation in operations(spec)}
    assert by_route[("get", "/bots")] == "listBots" and by_route[("post", "/bots")] == "createBot"
    assert by_route[("get", "/bots/{botId}")] == "getBot" and by_route[("put", "/bots/{botId}")] == "updateBot"
    assert by_route[("delete", "/bots/{botId}")] == "deleteBot"
    assert by_route[("post", "/bots/{botId}/start")] == "startBot"
    assert by_route[("get", "/runs/{runId}/equity")] == "getRunEquity"
    assert set(openapi.OPERATION_IDS.values()) <= set(ids), "OPERATION_IDS names a route that is gone"
    assert set(openapi.RESPONSE_HEADERS) <= set(ids), "RESPONSE_HEADERS names an operation that is gone"


def test_every_tag_is_declared(spec):
    declared = [tag["name"] for tag in spec["tags"]]
    used = {tag for _m, _p, operation in operations(spec) for tag in operation["tags"]}
    assert used == set(declared) and all("description" in tag for tag in spec["tags"])


def test_one_schema_per_model_and_no_automatic_titles(spec):
    schemas = spec["components"]["schemas"]
    assert not [name for name in schemas if name.endswith(("-Input", "-Output")) or "__" in name]

    def titles(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "title" and isinstance(value, str) and path.count("/") > 3:
                    yield path
                if key not in ("examples", "example", "default", "enum", "const"):
                    yield from titles(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from titles(value, f"{path}/{index}")

    found = [p for p in titles(spec["components"], "#/components") if not p.endswith("/properties")]
    found += list(titles(spec["paths"], "#/paths/x/y"))
    assert found == [], found[:10]


def _open_objects(node, path=""):
    if isinstance(node, dict):
        additional = node.get("additionalProperties", True if node.get("type") == "object" else None)
        if node.get("type") == "object" and "properties" not in node and additional in (True, {}):
            yield path
        for key, value in node.items():
            if key not in ("examples", "example", "default", "enum", "const"):
                yield from _open_objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _open_objects(value, f"{path}/{index}")


def test_no_open_object_but_a_strategys_params(spec):
    for path in _open_objects(spec):
        member = [part for part in path.split("/") if part not in ("anyOf", "0", "1", "schema", "content")]
        name = member[-1] if member[-2] == "properties" else member[-2]
        assert name in OPEN_ON_PURPOSE, path
        assert "params" in path.lower() or "Params" in path, path


def test_named_members_are_typed(spec):
    schemas = spec["components"]["schemas"]

    def ref(schema):
        found = [s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s]
        return found[0].rsplit("/", 1)[1] if found else None

    assert ref(schemas["BotRead"]["properties"]["execution"]) == "ExecutionRead"
    assert ref(schemas["BotCreate"]["properties"]["execution"]) == "ExecutionSettings"
    assert ref(schemas["RunDetail"]["properties"]["stats"]) == "RunStats"
    assert ref(schemas["RunDetail"]["properties"]["config"]) == "RunConfig"
    assert ref(schemas["AuditRead"]["properties"]["diff"]) == "AuditDiff"
    assert ref(schemas["DeployRead"]["properties"]["candidate"]) == "DeployCandidate"
    assert ref(schemas["ConfigDump"]["properties"]["config"]) == "EffectiveConfig"
    assert ref(schemas["StrategyRead"]["properties"]["paramsSchema"]) == "ParamSchema"
    assert schemas["RiskAnswer"]["additionalProperties"] == {"$ref": "#/components/schemas/JsonValue"}


def test_response_decimals_are_strings_and_defaults_plain(spec):
    schemas = spec["components"]["schemas"]
    for name in ("ExecutionRead", "RoundtripRead", "PortfolioTotals", "CompareRoundTrip"):
        for member, schema in schemas[name]["properties"].items():
            # durationS is seconds; equity is the mark-to-market float series (GET /runs/{id}/equity)
            assert "number" not in str(schema) or member in ("durationS", "equity"), (name, member, schema)
    assert schemas["RoundtripRead"]["properties"]["qty"]["type"] == "string"
    steps = schemas["ExecutionSettings"]["properties"]["qtyStep"]
    assert steps["default"] == "0.00000001"  # pydantic writes str(Decimal("0.00000001")): "1E-8"
    assert [alternative["type"] for alternative in steps["anyOf"]] == ["number", "string"]  # a request sends either


def test_response_members_that_are_always_sent_are_required(spec):
    bot = spec["components"]["schemas"]["BotRead"]
    assert set(bot["required"]) == set(bot["properties"])
    assert "required" not in spec["components"]["schemas"]["BotSnapshot"]  # only the members present are sent
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail"]


def test_response_headers_are_declared(spec):
    by_id = {operation["operationId"]: operation for _m, _p, operation in operations(spec)}
    headers = spec["components"]["headers"]
    assert headers["X-Request-ID"]["required"] is True
    for _m, _p, operation in operations(spec):
        for status, response in operation["responses"].items():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"]
    assert set(by_id["createBot"]["responses"]["201"]["headers"]) >= {"Location", "ETag", "Idempotent-Replayed"}
    assert "ETag" in by_id["getBot"]["responses"]["200"]["headers"]
    assert "ETag" in by_id["updateBot"]["responses"]["200"]["headers"]
    assert "Location" in by_id["createBacktest"]["responses"]["202"]["headers"]
    assert "X-Audit-Id" in by_id["emergencyFlatten"]["responses"]["200"]["headers"]


def test_every_example_is_valid(spec):
    """A schema's examples conform to it (FastAPI drops null members from examples: a required one must not be
    null there)."""
    wrong = []

    def check(schema, where):
        if isinstance(schema, dict):
            if isinstance(schema.get("examples"), list):
                rest = {key: value for key, value in schema.items() if key != "examples"}
                validator = jsonschema_rs.Draft202012Validator({**rest, "components": spec["components"]})
                wrong.extend((where, error.message) for example in schema["examples"]
                             for error in validator.iter_errors(example))
            for key, value in schema.items():
                if key not in ("examples", "default", "enum", "const"):
                    check(value, f"{where}/{key}")
        elif isinstance(schema, list):
            for index, value in enumerate(schema):
                check(value, f"{where}/{index}")

    check(spec["components"]["schemas"], "#/components/schemas")
    check(spec["paths"], "#/paths")
    assert wrong == []


def test_header_parameters_are_spelled_as_http_documents_them(spec):
    names = {parameter["name"] for _m, _p, operation in operations(spec)
             for parameter in operation.get("parameters", []) if parameter["in"] == "header"}
    assert {"Idempotency-Key", "If-Match"} <= names and all(n[0].isupper() for n in names), names


async def test_the_headers_declared_are_sent(client, operator_headers):
    body = {"name": "headers-declared", "strategy": "sma_crossover", "symbol": "BTCUSDT", "interval": "1m"}
    created = await client.post("/bots", json=body, headers={**operator_headers, "Idempotency-Key": "hd-1"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/bots/{created.json()['id']}" and created.headers["etag"] == '"1"'
    assert re.fullmatch(openapi.HEADERS["X-Request-ID"]["schema"]["pattern"], created.headers["x-request-id"])
    again = await client.post("/bots", json=body, headers={**operator_headers, "Idempotency-Key": "hd-1"})
    assert again.headers["idempotent-replayed"] == "true"
    read = await client.get(f"/bots/{created.json()['id']}")
    assert read.headers["etag"] == '"1"' and "x-request-id" in read.headers
    assert read.json()["execution"]["qtyStep"] == "0.00000001"


def test_yaml_readers_agree_on_every_string():
    """No plain scalar that PyYAML (YAML 1.1) reads as a string looks like a number to a YAML 1.2 reader."""
    text = (ROOT / "openapi.yaml").read_text(encoding="utf-8")
    assert "default: 1E-8" not in text
    number_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+")
    loose = [event.value for event in yaml.parse(text, Loader=yaml.SafeLoader)
             if isinstance(event, yaml.ScalarEvent) and event.style is None and number_12.fullmatch(event.value)
             and isinstance(yaml.safe_load(event.value), str)]
    assert loose == []
    assert openapi.to_yaml({"a": "1E-8", "b": "0o17", "c": "x", "d": 1e-8}) == "a: '1E-8'\nb: '0o17'\nc: x\nd: 1.0e-08\n"
    assert yaml.safe_load(openapi.to_yaml({"a": "1E-8"})) == {"a": "1E-8"}
