"""snake_case → camelCase at the edge: examples and properties (hypothesis)."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from gordon_manager.events.camel import camelize, to_camel
from gordon_manager.http import casing as camel  # the one converter (events.camel re-exports it)

WORD = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8).filter(
    lambda w: w[0].isalpha())
KEY = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=0, max_size=20)
SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEY, inner, max_size=4),
                    max_leaves=20)


def test_examples():
    assert to_camel("bot_id") == "botId"
    assert to_camel("tripped_at") == "trippedAt"
    assert to_camel("stale_after_seconds") == "staleAfterSeconds"
    assert to_camel("level_2") == "level2"
    assert to_camel("botId") == "botId"
    assert to_camel("_private") == "_private"
    assert to_camel("trailing_") == "trailing_"
    assert to_camel("a__b") == "aB"


def test_nested_keys_are_converted_and_values_are_not():
    row = {"bot_id": 1, "data": {"fast_period": 10, "legs": [{"entry_price": "1.5", "side": "long_short"}]},
           "note": "keep_snake_in_values"}
    assert camelize(row) == {"botId": 1, "data": {"fastPeriod": 10, "legs": [{"entryPrice": "1.5",
                                                                              "side": "long_short"}]},
                             "note": "keep_snake_in_values"}


def test_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(camel, "_CACHE_MAX", 3)
    camel._CACHE.clear()
    for i in range(10):
        assert to_camel(f"k_{i}_x") == f"k{i}X"
    assert len(camel._CACHE) <= 3


@given(st.lists(WORD, min_size=1, max_size=5))
def test_snake_words_become_camel(words):
    expected = words[0] + "".join(w[0].upper() + w[1:] for w in words[1:])
    assert to_camel("_".join(words)) == expected


@given(KEY)
def test_idempotent_and_no_inner_underscore(key):
    once = to_camel(key)
    assert to_camel(once) == once
    core = once.strip("_")
    assert "_" not in core
    if "_" not in key:
        assert once == key


@given(JSON)
def test_camelize_preserves_structure_and_values(value):
    out = camelize(value)

    def check(original, converted):
        if isinstance(original, dict):
            assert isinstance(converted, dict)
            expected_keys = {to_camel(k) for k in original}
            assert set(converted) == expected_keys
            for key in original:
                # on a collision (a_b and aB) the later key wins, like any dict build
                winner = [v for k, v in original.items() if to_camel(k) == to_camel(key)][-1]
                check(winner, converted[to_camel(key)])
        elif isinstance(original, list):
            assert isinstance(converted, list) and len(converted) == len(original)
            for a, b in zip(original, converted, strict=True):
                check(a, b)
        else:
            assert converted == original or (converted != converted and original != original)

    check(value, out)
    assert camelize(out) == out
