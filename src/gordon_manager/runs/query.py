"""Query parameters as one pydantic model, validated in one call and documented from that model.

FastAPI inspects every declared query parameter's annotation on every request; for the equity
page (the console's hot path) that costs more than building the page. Here the whole query
string is validated by one ``model_validate`` and the OpenAPI parameters are generated from the
same model, so the documentation cannot drift from what is accepted. Validation failures are the
usual 422 problem (same field names and messages as FastAPI's).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse_query(model: type[M], request: Request) -> M:
    """The request's query string as ``model`` (the last value wins for a repeated key)."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("query", *err["loc"])} for err in exc.errors(include_url=False)]) from exc


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects (``in: query``) for every field of ``model``, by alias."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out
