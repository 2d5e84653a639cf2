"""Base models: camelCase on the wire (both ways), snake_case in Python."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
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


def _storable_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_integers(value, "")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_object)]
"""A free-form JSON object a request carries (strategy params, execution settings): integers beyond
64 bits are refused (422), as neither orjson nor PostgreSQL's jsonb handling here can carry them."""


class CamelModel(BaseModel):
    """Serialises camelCase; accepts camelCase (and snake_case) input; rejects unknown fields."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              from_attributes=True)


class Page(CamelModel, Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque cursor of the next page; null on the last page.")
