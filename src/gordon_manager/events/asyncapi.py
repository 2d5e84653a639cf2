"""The AsyncAPI document: the hand-written protocol (``asyncapi.base.yaml``) plus the payload schemas
generated from the models /ws serialises with (events/wire.py, events/breaker.py).

``asyncapi.yaml`` at the repository root is ``render()`` (``make asyncapi``; a test keeps it current)
and ``GET /asyncapi.yaml`` serves it. Generated: every row model of ``wire.ROW_MODELS`` (the same
models as the HTTP reads), one envelope per table (``<Table>Changed``: ``channel`` and ``table`` as
constants, ``data`` the row model), ``OutboxEvent`` (one of the envelopes) and ``BreakerEvent``.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from pydantic_core import core_schema

from gordon_manager.events.breaker import BreakerEvent
from gordon_manager.events.wire import ROW_MODELS
from gordon_manager.http.models import sparse_model_names
from gordon_manager.http.values import DECIMAL_PATTERN
from gordon_manager.version import __version__

REF = "#/components/schemas/{model}"

# table → name of its event envelope
ENVELOPES = {
    "risk_halt": "RiskHaltChanged",
    "breaker_state": "BreakerStateChanged",
    "portfolio_state": "PortfolioStateChanged",
    "source_freshness": "SourceFreshnessChanged",
    "backfill_jobs": "BackfillJobChanged",
    "bot_configs": "BotConfigChanged",
    "bot_status": "BotStatusChanged",
    "bot_events": "BotEventAppended",
    "bot_deploys": "BotDeployChanged",
    "service_deploys": "ServiceDeployChanged",
    "runs": "RunChanged",
    "backtest_sweeps": "SweepChanged",
}
# which operations a table's trigger captures (migration 0007)
_OPS = {table: ["insert", "update", "delete"] for table in
        ("risk_halt", "breaker_state", "portfolio_state", "source_freshness", "backfill_jobs")}
_OPS["bot_events"] = ["insert"]


class _Schemas(GenerateJsonSchema):
    """What the console receives: decimals as plain-notation strings, no per-property auto titles."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> dict[str, Any]:
        if self.mode == "serialization":
            return {"type": "string", "pattern": DECIMAL_PATTERN}
        return super().decimal_schema(schema)

    def field_title_should_be_set(self, schema) -> bool:
        return False


def _every_field_present(schema: Any) -> None:
    """A model's JSON always carries every field (null when unset): all are required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and isinstance(schema.get("properties"), dict):
            schema["required"] = list(schema["properties"])
        for value in schema.values():
            _every_field_present(value)
    elif isinstance(schema, list):
        for value in schema:
            _every_field_present(value)


def model_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    """Serialization-mode JSON schemas of ``models`` (and of the models they nest), by component name."""
    _, top = models_json_schema([(m, "serialization") for m in models], by_alias=True, ref_template=REF,
                                schema_generator=_Schemas)
    defs = top.get("$defs", {})
    for schema in defs.values():
        # AsyncAPI's Schema Object names the discriminating property (a string); OpenAPI's is an object.
        if isinstance(schema.get("discriminator"), dict):
            schema["discriminator"] = schema["discriminator"]["propertyName"]
    sparse = sparse_model_names()  # they send only the members present: their schema says which are required
    _every_field_present({name: schema for name, schema in defs.items() if name not in sparse})
    return dict(sorted(defs.items()))


def _envelope(table: str, channel: str, model: type[BaseModel]) -> dict[str, Any]:
    ops = _OPS.get(table, ["insert", "update"])
    return {
        "type": "object",
        "description": f"A change of a `trading.{table}` row on channel `{channel}`; `data` is the row after "
                       f"it ({'the row before it for a delete' if 'delete' in ops else 'rows are never deleted'}).",
        "required": ["id", "channel", "op", "table", "data"],
        "properties": {
            "id": {"type": "integer", "description": "Outbox id (trading.events.id); use it as `since`."},
            "channel": {"const": channel},
            "op": {"type": "string", "enum": ops},
            "table": {"const": table},
            "data": {"$ref": REF.format(model=model.__name__)},
        },
    }


def _refs(value: Any) -> set[str]:
    """Names of the component schemas ``value`` refers to."""
    if isinstance(value, dict):
        found = {value["$ref"].rsplit("/", 1)[1]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value))
    return set()


def _declared_by_hand(name: str) -> dict[str, Any]:
    """A schema the models refer to without generating it (``WithJsonSchema``): the OpenAPI document's."""
    if name == "JsonValue":  # any JSON value, declared by http/openapi.py
        from gordon_manager.http.openapi import JSON_VALUE_SCHEMA

        return copy.deepcopy(JSON_VALUE_SCHEMA)
    raise ValueError(f"a /ws model refers to #/components/schemas/{name}, which nothing defines")


def generated_schemas() -> dict[str, Any]:
    """Every generated component schema, by name."""
    models = [model for _, model, _ in ROW_MODELS.values()]
    schemas = model_schemas([*models, BreakerEvent])
    for name in sorted(_refs(schemas) - set(schemas)):
        schemas[name] = _declared_by_hand(name)
    envelopes = {ENVELOPES[table]: _envelope(table, channel, model)
                 for table, (channel, model, _) in ROW_MODELS.items()}
    schemas.update(envelopes)
    schemas["OutboxEvent"] = {
        "description": "A row change captured by the outbox trigger: one envelope per source table, told "
                       "apart by `table` (and `channel`).",
        "oneOf": [{"$ref": REF.format(model=name)} for name in envelopes],
    }
    return schemas


def _base() -> dict[str, Any]:
    text = resources.files("gordon_manager.events").joinpath("asyncapi.base.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def document() -> dict[str, Any]:
    """The whole AsyncAPI document."""
    doc = _base()
    doc["info"]["version"] = __version__
    schemas = doc["components"]["schemas"]
    generated = generated_schemas()
    clash = sorted(set(schemas) & set(generated))
    if clash:
        raise ValueError(f"asyncapi.base.yaml defines generated schemas: {', '.join(clash)}")
    schemas.update(generated)
    return doc


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line text (descriptions stay readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


@functools.cache
def render() -> str:
    """The document as YAML (what asyncapi.yaml contains and GET /asyncapi.yaml serves)."""
    return yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
