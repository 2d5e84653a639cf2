"""The pure-Python twin of the C extension ``gordon_manager._rowjson`` (see ``_rowjson.c``).

Same functions, same bytes, same errors; used when the extension is not built (``gordon_manager.rowjson``
picks), and the tests check both give the same answers. It is a few times slower, never wrong.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta

__all__ = ["decimals", "rows", "timestamps"]

MAX_COLUMNS = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00
_MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999
_NUMBER = re.compile(rb"^(-?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$")
_DOT_MAX = 340


def _bytes_items(items: object, name: str, k: int) -> list[bytes]:
    if not isinstance(items, tuple) or len(items) != k:
        raise TypeError(f"{name} must be a tuple of {k} bytes")
    for j, item in enumerate(items):
        if not isinstance(item, bytes):
            raise TypeError(f"{name}[{j}] must be bytes")
    return list(items)


def rows(prefixes: tuple, columns: tuple, separators: tuple, row_end: bytes, n: int, head: bytes = b"",
         tail: bytes = b"") -> bytes:
    """head + b'[' + the n rows, each prefix[j] + value of column j ... + row_end, joined by b',' + b']' + tail."""
    if not isinstance(columns, tuple) or not isinstance(prefixes, tuple) or not isinstance(separators, tuple):
        raise TypeError("prefixes, columns and separators must be tuples")
    k = len(columns)
    if k < 1 or k > MAX_COLUMNS:
        raise ValueError(f"between 1 and {MAX_COLUMNS} columns are supported")
    if n > sys.maxsize:
        raise OverflowError("Python int too large to convert to C ssize_t")
    if n < 0:
        raise ValueError("n must not be negative")
    pre = _bytes_items(prefixes, "prefixes", k)
    col = _bytes_items(columns, "columns", k)
    sep = _bytes_items(separators, "separators", k)
    if n == 0:
        for j, column in enumerate(col):
            if column:
                raise ValueError(f"column {j} holds values but n is 0")
        return head + b"[]" + tail
    values = []
    for j in range(k):
        if not sep[j]:
            raise ValueError(f"separators[{j}] is empty")
        if n > len(col[j]):
            raise ValueError(f"column {j} holds fewer than {n} values")
        parts = col[j].split(sep[j])
        if len(parts) != n or any(not part for part in parts):
            raise ValueError(f"the columns do not hold exactly {n} values each")
        values.append(parts)
    body = b",".join(b"".join(pre[j] + values[j][i] for j in range(k)) + row_end for i in range(n))
    return head + b"[" + body + b"]" + tail


def _year(us: int) -> int:
    """The proleptic Gregorian year of epoch microseconds, any range (H. Hinnant's civil_from_days)."""
    z = us // 1_000_000 // 86400 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2)


def _rfc3339(us: int) -> bytes:
    if us < _MIN_US or us > _MAX_US:
        raise ValueError(f"year {_year(us)} is outside 1..9999")
    moment = _EPOCH + timedelta(microseconds=us)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return ("0" * (4 - text.index("-")) + text).encode()  # years below 1000 have four digits


def timestamps(micros: object, separator: bytes) -> bytes:
    """int64 epoch microseconds (a buffer) as RFC 3339 times without offset, joined by ``separator``."""
    view = memoryview(micros).cast("B")  # type: ignore[arg-type]  # any buffer (numpy array, bytes); object has no Buffer type
    if len(view) % 8:
        raise ValueError("micros must hold whole int64 values")
    return separator.join(_rfc3339(us) for us in view.cast("q"))


def _plain(number: bytes) -> bytes:
    match = _NUMBER.match(number)
    if match is None or not (match.group(2) or match.group(3)):
        raise ValueError
    sign, whole, fraction, exponent = match.group(1), match.group(2), match.group(3) or b"", match.group(4)
    digits = whole + fraction
    if exponent is not None and (len(exponent.lstrip(b"+-")) > 4):
        raise ValueError
    dot = len(whole) + (int(exponent) if exponent is not None else 0)
    stripped = digits.lstrip(b"0")
    dot -= len(digits) - len(stripped)
    digits = stripped.rstrip(b"0")
    if not digits:
        return b"0"
    if dot < -_DOT_MAX or dot > _DOT_MAX:
        raise ValueError
    if dot <= 0:
        text = b"0." + b"0" * -dot + digits
    elif dot >= len(digits):
        text = digits + b"0" * (dot - len(digits))
    else:
        text = digits[:dot] + b"." + digits[dot:]
    return sign + text


def decimals(numbers: bytes, separator: bytes) -> bytes:
    """Comma-separated JSON numbers (and nulls) as JSON strings of their plain decimal, joined by ``separator``."""
    if not numbers:
        return b""
    out = []
    for i, item in enumerate(numbers.split(b",")):
        if item == b"null":
            out.append(b"null")
            continue
        try:
            out.append(b'"' + _plain(item) + b'"')
        except ValueError:
            raise ValueError(f"item {i} is not a JSON number") from None
    return separator.join(out)
