"""Base models: camelCase on the wire (both ways), snake_case in Python."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)
from pydantic.alias_generators import to_camel

T = TypeVar("T")
_INT64 = range(-(2**63), 2**63)


def _check_integers(value: Any, path: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise ValueError(f"{path}: integers must fit in 64 bits")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_integers(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_integers(item, f"{path}[{index}]")


def storable_object(value: Any) -> Any:
    """``value`` unchanged; ValueError when it carries an integer beyond 64 bits (at any depth)."""
    _check_integers(value, "")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(storable_object)]
"""A free-form JSON object a request carries (strategy params, execution settings): integers beyond
64 bits are refused (422), as neither orjson nor PostgreSQL's jsonb handling here can carry them."""


JSON_VALUE_REF = "#/components/schemas/JsonValue"
"""Any JSON value (the schema is declared by ``http.openapi``)."""


def json_value_members(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a model whose extra members are JSON values (JSON another service wrote)."""
    schema["additionalProperties"] = {"$ref": JSON_VALUE_REF}


JsonMembers = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "additionalProperties": {"$ref": JSON_VALUE_REF}})]
"""A JSON object whose members another service (or a component of ours, per event kind) chose, passed on as
it was recorded: documented as an object of JSON values."""


class CamelModel(BaseModel):
    """Serialises camelCase; accepts camelCase (and snake_case) input; rejects unknown fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              from_attributes=True)


class Page(CamelModel, Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque cursor of the next page; null on the last page.")


def _only_required(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A sparse model's schema requires only its members without a default, in serialization mode too (where
    pydantic would require every member: it sends them all, which a ``SparseModel`` does not)."""
    properties = schema.get("properties", {})
    required = [field.alias if field.alias in properties else name
                for name, field in model.model_fields.items() if field.is_required()]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


class SparseModel(CamelModel):
    """A model of JSON stored by earlier code (audit snapshots): members may be absent, which is not the same as
    null, so only the members present are sent; members not modelled are dropped, never a 500."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=lambda schema, cls: _only_required(schema, cls))

    # No return annotation: pydantic would document it as the model's serialization schema (any object).
    @model_serializer(mode="wrap")
    def _present_only(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # noqa: ANN202
        data = handler(self)
        fields = type(self).model_fields
        present = {key for name in self.model_fields_set for key in (name, fields[name].alias) if key}
        return {key: value for key, value in data.items() if key in present}


def sparse_model_names() -> set[str]:
    """Names of the ``SparseModel`` schemas (a schema generator must not require their optional members)."""
    found: set[str] = set()
    pending = list(SparseModel.__subclasses__())
    while pending:
        model = pending.pop()
        found.add(model.__name__)
        pending.extend(model.__subclasses__())
    return found

