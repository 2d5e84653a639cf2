"""The representation rules shared by HTTP and /ws (http/values.py, http/casing.py keep=)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from gordon_manager.http.casing import camelize
from gordon_manager.http.values import (
    DECIMAL_PATTERN,
    DecimalStr,
    Fraction,
    iso_utc,
    plain_decimal,
    plain_decimal_strings,
    utc_text,
    utc_times,
)


class Sample(BaseModel):
    amount: DecimalStr
    maybe: DecimalStr | None = None
    progress: Fraction = Field(ge=0, le=1)


def test_decimals_are_plain_strings_with_their_scale():
    assert plain_decimal(Decimal("1E-8")) == "0.00000001"
    assert plain_decimal(Decimal("0E-8")) == "0.00000000"
    assert plain_decimal(Decimal("1000.10")) == "1000.10"
    assert plain_decimal(Decimal("4.2E+4")) == "42000"
    body = Sample(amount=Decimal("1E-8"), maybe=Decimal("-1.50"), progress=0.5505372000000001)
    assert body.model_dump(mode="json") == {"amount": "0.00000001", "maybe": "-1.50", "progress": 0.5505}
    assert body.model_dump()["amount"] == Decimal("1E-8")  # Python values stay exact decimals


def test_the_json_schema_is_the_type_s():
    # the serializers change no document: OpenAPI still says string (decimals) and number in 0..1
    props = Sample.model_json_schema(mode="serialization")["properties"]
    assert props["amount"]["type"] == "string"
    assert props["progress"] == {"maximum": 1, "minimum": 0, "title": "Progress", "type": "number"}


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_every_decimal_renders_plainly_and_exactly(value):
    import re

    text = Sample(amount=value, progress=0).model_dump(mode="json")["amount"]
    assert re.match(DECIMAL_PATTERN, text) and Decimal(text) == value


def test_stored_exponents_are_rewritten_and_nothing_else():
    assert plain_decimal_strings({"qty_step": "1E-8", "initial_cash": "10000", "name": "1E5x", "n": 1,
                                  "e": "2.5e+3"}) == {"qty_step": "0.00000001", "initial_cash": "10000",
                                                      "name": "1E5x", "n": 1, "e": "2500"}


def test_times_are_utc_z():
    assert utc_text("2026-05-17T12:00:00.5+02:00") == "2026-05-17T10:00:00.500000Z"
    assert utc_text("2026-05-17") == "2026-05-17" and utc_text(3) == 3
    assert iso_utc(datetime(2026, 5, 17, 10, tzinfo=UTC)) == "2026-05-17T10:00:00Z"
    assert utc_times({"a": ["2026-05-17T10:00:00+00:00"], "b": {"c": "x"}}) == {
        "a": ["2026-05-17T10:00:00Z"], "b": {"c": "x"}}


def test_user_keys_are_kept_at_any_depth():
    snapshot = {"desired_state": "running", "labels": {"team_name": "a", "BTC_USDT": "b"},
                "params": {"fast_period": 1}}
    assert camelize(snapshot, keep=frozenset({"labels"})) == {
        "desiredState": "running", "labels": {"team_name": "a", "BTC_USDT": "b"}, "params": {"fastPeriod": 1}}
    diff = {"labels": {"before": {"team_name": "a"}, "after": {}}, "shadow_of": {"before": None, "after": 1}}
    assert camelize(diff, keep=frozenset({"labels"})) == {
        "labels": {"before": {"team_name": "a"}, "after": {}}, "shadowOf": {"before": None, "after": 1}}
