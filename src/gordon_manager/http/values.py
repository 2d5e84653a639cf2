"""One representation of every value, on HTTP and on /ws (README "Value representation").

* **Decimals** (money, quantities, steps) are exact strings in plain notation: ``"0.00000001"``,
  never ``"1E-8"`` and never a JSON number; the scale is the one stored (``"1000.10"``).
  ``DecimalStr`` is a ``Decimal`` that serialises so; ``plain_decimal_strings`` fixes decimal
  strings that were stored with an exponent.
* **Amounts stored as float8** (the equity series — equity, cash, position, price — and figures
  derived from it: final equity, portfolio equity, deploy equity differences) are decimal strings
  too: the shortest digits that read back as the same double (the digits ``repr()`` chooses), in
  plain notation, with no trailing ``.0``: ``10512.25`` → ``"10512.25"``, ``1e-05`` → ``"0.00001"``,
  ``10000.0`` → ``"10000"``. ``FloatDecimalStr`` serialises so; ``float_decimals`` does a whole
  column in C (``_rowjson.decimals``, the same digits as orjson writes).
* **Times** are RFC 3339 in UTC with ``Z`` (pydantic writes aware UTC datetimes so; ``utc_text``
  rewrites the text PostgreSQL's ``to_jsonb`` writes in the session time zone).
* **Fractions** of work done (``progress``) are rounded to ``FRACTION_DIGITS`` decimals
  (``0.5505``, not ``0.5505372000000001``): ``Fraction``.
* **Keys**: ours are camelCase; keys a user or another service chose (bot labels, the ``data`` of
  breakers and overlays, a source's ``detail``) pass unchanged (``http.casing.camelize(keep=…)``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, PlainSerializer, WithJsonSchema

from gordon_manager import rowjson as _rowjson

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
FRACTION_DIGITS = 4

# to_jsonb(timestamptz) renders in the writer's session time zone: "2026-05-17T12:00:00.5+02:00".
_PG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d$")
# A decimal written with an exponent (str(Decimal("0.00000001")) == "1E-8").
_EXPONENT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+$")


def plain_decimal(value: Decimal) -> str:
    """``Decimal`` → plain notation with its own scale (``1E-8`` → ``"0.00000001"``)."""
    return format(value, "f")


def round_fraction(value: float) -> float:
    """A fraction rounded to ``FRACTION_DIGITS`` decimals."""
    return round(value, FRACTION_DIGITS)


# The serializers are lambdas on purpose: without a return annotation pydantic keeps the type's own
# JSON schema (Decimal's string; the field's number with its bounds) instead of the function's.
DecimalStr = Annotated[Decimal, PlainSerializer(lambda value: plain_decimal(value), when_used="json")]
"""An exact decimal; JSON: a plain-notation string."""

def float_decimal(value: float | None) -> str | None:
    """A float amount as its decimal string (see the module docstring); NaN, infinities, None → None."""
    if value is None:
        return None
    text = _rowjson.decimals(orjson.dumps(float(value)), b",")
    return None if text == b"null" else text[1:-1].decode()


def float_decimals(values: np.ndarray) -> list[str | None]:
    """``float_decimal`` of every value of a float64 array, in one C pass."""
    if not len(values):
        return []
    text = _rowjson.decimals(orjson.dumps(np.ascontiguousarray(values, dtype=np.float64),
                                          option=orjson.OPT_SERIALIZE_NUMPY)[1:-1], b",")
    return [None if item == "null" else item[1:-1] for item in text.decode().split(",")]


FloatDecimalStr = Annotated[
    float,
    PlainSerializer(lambda value: float_decimal(value), when_used="json"),
    WithJsonSchema({"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}),
]
"""An amount kept as a float (the equity series and what is derived from it); JSON: the decimal
string of its shortest round-trip digits."""

Fraction = Annotated[float, PlainSerializer(lambda value: round_fraction(value), when_used="json")]
"""A fraction (0..1, the field says so); JSON: rounded to ``FRACTION_DIGITS`` decimals."""


def plain_decimal_strings(values: dict[str, Any]) -> dict[str, Any]:
    """The same mapping with decimal strings written with an exponent in plain notation
    (execution configs stored as ``{"qty_step": "1E-8"}``); other values are untouched."""
    out = {}
    for key, value in values.items():
        if isinstance(value, str) and _EXPONENT.match(value):
            try:
                value = plain_decimal(Decimal(value))
            except InvalidOperation:  # pragma: no cover - the pattern only matches decimals
                pass
        out[key] = value
    return out


def iso_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_text(value: Any) -> Any:
    """PostgreSQL timestamp text with an offset → UTC ``…Z``; any other value unchanged."""
    if isinstance(value, str) and _PG_TIMESTAMP.match(value):
        return iso_utc(datetime.fromisoformat(value))
    return value


def utc_times(value: Any) -> Any:
    """``utc_text`` (and datetimes to ``…Z``) at every depth of our own JSON (never of JSON a user or
    another service wrote)."""
    if isinstance(value, str):
        return utc_text(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: utc_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [utc_times(v) for v in value]
    return value


# RFC 3339 date-time (section 5.6; a space or lower-case t/z allowed, as its note says).
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})")


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 text with an offset gets to pydantic, which alone would also take Unix seconds
    (``to=0.5`` was 1970-01-01T00:00:00.5Z) and offsets without a colon."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2024-01-01T00:00:00Z")
    return value


def _in_utc_range(value: datetime) -> datetime:
    try:
        value.astimezone(UTC)  # what asyncpg does to send it; 0001-01-01T00:00:00+01:00 has no UTC time
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None
    return value


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc_range)]
"""A time the API reads (query or body): RFC 3339 text with an offset, nothing else."""
