"""The C row builder (``gordon_manager._rowjson``), its pure-Python twin (``_rowjson_py``, the fallback when
the extension is not built: every test runs on both), and the page body built with them.

The extension is part of the package: it must be built (``make test`` installs it) and it must
give the bytes a plain-Python split-and-join gives, for any input, and refuse malformed input.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gordon_manager import _rowjson, _rowjson_py, rowjson
from gordon_manager.http.values import float_decimal, float_decimals
from gordon_manager.runs import equity

IMPLEMENTATIONS = pytest.mark.parametrize("impl", [pytest.param(_rowjson, id="c"),
                                                  pytest.param(_rowjson_py, id="python")])

SEPARATORS = [b",", b'","', b"|", b"::"]


def reference(prefixes, columns, separators, row_end, n, head=b"", tail=b""):
    """The same function in plain Python."""
    split = [c.split(s) if n else [] for c, s in zip(columns, separators, strict=True)]
    assert all(len(values) == n for values in split)
    rows = [b"".join(p + values[i] for p, values in zip(prefixes, split, strict=True)) + row_end for i in range(n)]
    return head + b"[" + b",".join(rows) + b"]" + tail


@st.composite
def tables(draw):
    k = draw(st.integers(1, 6))
    n = draw(st.integers(0, 40))
    separators = tuple(draw(st.sampled_from(SEPARATORS)) for _ in range(k))
    alphabet = st.binary(min_size=1, max_size=12)
    columns = []
    for sep in separators:
        values = draw(st.lists(alphabet.filter(lambda v, s=sep: s not in v and not v.endswith(s[:1])
                                               and not v.startswith(s[-1:])), min_size=n, max_size=n))
        columns.append(sep.join(values))
    prefixes = tuple(draw(st.binary(max_size=8)) for _ in range(k))
    return prefixes, tuple(columns), separators, draw(st.binary(max_size=3)), n, draw(st.binary(max_size=9)), \
        draw(st.binary(max_size=9))


@IMPLEMENTATIONS
@settings(max_examples=300, deadline=None)
@given(tables())
def test_rows_equals_the_python_split_and_join(impl, table):
    prefixes, columns, separators, row_end, n, head, tail = table
    assert impl.rows(prefixes, columns, separators, row_end, n, head=head, tail=tail) == \
        reference(prefixes, columns, separators, row_end, n, head, tail)


@pytest.mark.parametrize(("columns", "n"), [
    ((b"1,2", b"a,b,c"), 2),  # too many values in one column
    ((b"1,2,3", b"a,b"), 3),  # too few
    ((b"1,,3", b"a,b,c"), 3),  # an empty value
    ((b"1,2,", b"a,b,c"), 3),  # a trailing separator
    ((b"1", b"a"), 0),  # values but n = 0
    ((b"", b""), 1),  # no values but n = 1
])
@IMPLEMENTATIONS
def test_rows_refuses_columns_that_do_not_hold_n_values(impl, columns, n):
    with pytest.raises(ValueError, match="values|n is 0"):
        impl.rows((b"{", b","), columns, (b",", b","), b"}", n)


@IMPLEMENTATIONS
def test_rows_checks_its_arguments(impl):
    with pytest.raises(TypeError):
        impl.rows((b"{",), ("1",), (b",",), b"}", 1)  # str, not bytes
    with pytest.raises(TypeError):
        impl.rows((b"{", b","), (b"1",), (b",",), b"}", 1)  # prefixes and columns differ in length
    with pytest.raises(ValueError, match="separators"):
        impl.rows((b"{",), (b"1",), (b"",), b"}", 1)
    with pytest.raises(ValueError, match="negative"):
        impl.rows((b"{",), (b"1",), (b",",), b"}", -1)
    with pytest.raises(ValueError, match="columns are supported"):
        impl.rows((), (), (), b"}", 1)
    assert impl.rows((b"{",), (b"",), (b",",), b"}", 0, head=b"H", tail=b"T") == b"H[]T"


floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.1, -0.0, 1e22, 5e-324, 1e16])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(-2_000_000_000, 4_000_000_000), floats, floats, floats, floats), max_size=60),
       st.none() | st.text(alphabet="abcXYZ-_0123456789", min_size=1, max_size=40))
def test_page_body_is_the_json_of_the_points(points, cursor):
    """Every field as the API's one representation says: RFC 3339 UTC times; amounts as the decimal string of
    their shortest round-trip digits (Decimal(repr(x)) in plain notation), null for NaN/inf."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    stamps = np.array(sorted({p[0] * 1_000_003 for p in points}), dtype=np.int64)
    rows = points[:len(stamps)]
    columns = [np.array([r[j] for r in rows], dtype=np.float64) for j in range(1, 5)]
    body = equity.page_body(stamps, columns, cursor)
    expected = [{"ts": (epoch + timedelta(microseconds=int(us))).isoformat().replace("+00:00", "Z"),
                 "equity": c[0], "cash": c[1], "positionQty": c[2], "price": c[3]}
                for us, *c in zip(stamps.tolist(), *[col.tolist() for col in columns], strict=True)]
    decoded = orjson.loads(body)
    assert decoded["nextCursor"] == cursor
    assert len(decoded["items"]) == len(expected)
    for got, want in zip(decoded["items"], expected, strict=True):
        assert datetime.fromisoformat(got["ts"]) == datetime.fromisoformat(want["ts"])
        assert got["ts"].endswith("Z")
        for key in ("equity", "cash", "positionQty", "price"):
            value = want[key]
            assert got[key] == (reference_decimal(value) if math.isfinite(value) else None)
            if got[key] is not None:
                assert float(got[key]) == value  # the string reads back as the same double


def test_page_columns_restores_time_order_when_the_plan_does_not_keep_it():
    pg_epoch = 946_684_800_000_000
    stamps = np.array([30, 10, 20], dtype=np.int64)
    values = np.array([3.0, 1.0, 2.0])
    packed = [(stamps - pg_epoch).astype(">i8").tobytes()] + [values.astype(">f8").tobytes()] * 4
    got_stamps, got_columns = equity.page_columns(packed)
    assert got_stamps.tolist() == [10, 20, 30]
    assert all(c.tolist() == [1.0, 2.0, 3.0] for c in got_columns)
    in_order = [(np.sort(stamps) - pg_epoch).astype(">i8").tobytes()] + [np.sort(values).astype(">f8").tobytes()] * 4
    assert equity.page_columns(in_order)[0].tolist() == [10, 20, 30]


MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def rfc3339(us: int) -> bytes:
    """What a page's times look like, by the standard library."""
    text = (datetime(1970, 1, 1) + timedelta(microseconds=us)).isoformat()
    return text.encode()


@IMPLEMENTATIONS
@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(MIN_US, MAX_US) | st.sampled_from([0, -1, 1, MIN_US, MAX_US, 951_782_400_000_000]),
                max_size=30), st.sampled_from([b",", b'","']))
def test_timestamps_are_rfc3339_for_every_year(impl, micros, sep):
    got = impl.timestamps(np.array(micros, dtype=np.int64), sep)
    assert got == sep.join(rfc3339(us) for us in micros)


@IMPLEMENTATIONS
def test_timestamps_match_orjson_and_refuse_years_outside_1_to_9999(impl):
    micros = np.array([0, 1, -1, 1_500_000, 1_709_251_200_000_001, MIN_US], dtype=np.int64)
    assert impl.timestamps(micros, b'","') == \
        orjson.dumps(micros.astype("datetime64[us]"), option=orjson.OPT_SERIALIZE_NUMPY)[2:-2]
    for bad in (MIN_US - 1, MAX_US + 1):
        with pytest.raises(ValueError, match="outside 1..9999"):
            impl.timestamps(np.array([bad], dtype=np.int64), b",")
    with pytest.raises(ValueError, match="whole int64"):
        impl.timestamps(b"1234567", b",")
    assert impl.timestamps(np.array([], dtype=np.int64), b",") == b""


def reference_decimal(value: float) -> str:
    """The plain decimal of repr()'s digits, by the standard library: no exponent, no trailing .0, no -0."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@IMPLEMENTATIONS
@settings(max_examples=800, deadline=None)
@given(st.lists(floats, max_size=40), st.sampled_from([b",", b"|", b'","']))
def test_decimals_are_the_plain_shortest_digits_of_every_double(impl, values, sep):
    got = impl.decimals(orjson.dumps(np.array(values, dtype=np.float64), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1], sep)
    want = [b"null" if not math.isfinite(v) else b'"' + reference_decimal(v).encode() + b'"' for v in values]
    assert got == sep.join(want)


@IMPLEMENTATIONS
def test_decimals_of_edge_values_and_refusals(impl):
    got = impl.decimals(b"1.0,2.5,null,1e-8,-0.0,5e-324,1.7976931348623157e308,1e16,-2.5e-7", b",")
    assert got.split(b",")[:5] == [b'"1"', b'"2.5"', b"null", b'"0.00000001"', b'"0"']
    assert got.split(b",")[5] == b'"0.' + b"0" * 323 + b'5"'
    assert got.split(b",")[6] == b'"17976931348623157' + b"0" * 292 + b'"'
    assert got.split(b",")[7:] == [b'"10000000000000000"', b'"-0.00000025"']
    assert impl.decimals(b"", b",") == b""
    for bad in (b"abc", b"1,,2", b"1e", b"1e99999", b"1e400", b"--1", b"1.2.3", b"1,", b"1e+", b"."):
        with pytest.raises(ValueError, match="not a JSON number"):
            impl.decimals(bad, b",")


def test_float_decimal_helpers_agree_with_the_column_writer():
    values = np.array([10512.25, 1e-05, 10000.0, float("nan"), -0.0, 0.1 + 0.2])
    assert float_decimals(values) == ["10512.25", "0.00001", "10000", None, "0", "0.30000000000000004"]
    assert [float_decimal(v) for v in values.tolist()] == float_decimals(values)
    assert float_decimal(None) is None and float_decimal(float("inf")) is None and float_decimals(np.empty(0)) == []
    assert float_decimal(np.float64(2.5)) == "2.5"


@IMPLEMENTATIONS
def test_rows_refuses_an_n_no_column_can_hold_without_overflowing(impl):
    for n in (2**62 + 1, 2**63 - 1, 10**12):
        with pytest.raises(ValueError, match="fewer than"):
            impl.rows((b'{"a":',), (b"1,2,3",), (b",",), b"}", n)
    with pytest.raises(OverflowError):
        impl.rows((b'{"a":',), (b"1",), (b",",), b"}", 2**63)  # beyond Py_ssize_t: refused by the parser


def test_the_package_uses_the_extension_and_the_twin_gives_the_same_page():
    assert rowjson.IMPLEMENTATION == "c"  # make test builds it; the twin is the fallback
    stamps = np.array([1_709_251_200_000_000 + i * 60_000_000 for i in range(50)], dtype=np.int64)
    columns = [np.linspace(1000, 1100, 50), np.full(50, np.nan), np.linspace(0, 1e-5, 50), np.full(50, 66000.5)]
    body = equity.page_body(stamps, columns, "c1")
    tail = b',"nextCursor":"c1"}'
    texts = [_rowjson_py.timestamps(stamps, b'","')] + [
        _rowjson_py.decimals(orjson.dumps(c, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1], b",") for c in columns]
    assert _rowjson_py.rows(equity._PREFIXES, tuple(texts), equity._SEPARATORS, b"}", 50, head=b'{"items":',
                            tail=tail) == body
