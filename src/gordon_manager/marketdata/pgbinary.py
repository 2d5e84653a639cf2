"""PostgreSQL binary COPY of fixed-width columns, encoded and decoded with numpy in one pass.

Rows of int4/int8/float8/timestamptz columns without NULLs all have the same size, so a COPY stream is
one numpy structured array: no per-row Python objects. That is what makes a million klines load
in a fraction of a second and a million equity points write in about as much.

Format (PostgreSQL docs, "COPY ... binary"): an 11-byte signature, int32 flags, int32 header
extension length (+ extension), then per row an int16 field count and, per field, an int32 byte
length followed by the value in network byte order; an int16 -1 ends the stream. A timestamptz is
an int64 of microseconds since 2000-01-01 UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = ["PG_EPOCH_US", "decode", "encode", "encode_rows", "encode_stream"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds
_HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_KINDS = {"i4": ">i4", "i8": ">i8", "f8": ">f8"}  # int4; int8 (and timestamptz: PG-epoch us); float8
_NATIVE = {"i4": np.int32, "i8": np.int64, "f8": np.float64}


def _row_dtype(kinds: Sequence[str]) -> np.dtype:
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, kind in enumerate(kinds):
        if kind not in _KINDS:
            raise ValueError(f"unsupported column kind {kind!r}; one of {', '.join(_KINDS)}")
        fields += [(f"l{i}", ">i4"), (f"v{i}", _KINDS[kind])]
    return np.dtype(fields)


def _width(kind: str) -> int:
    return np.dtype(_KINDS[kind]).itemsize


def encode(columns: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """A complete binary COPY stream of ``(kind, values)`` columns (kind ``i4``, ``i8`` or ``f8``), no NULLs."""
    return b"".join((_HEADER, encode_rows(columns), _TRAILER))


def encode_stream(columns: Sequence[tuple[str, np.ndarray]], chunk_rows: int) -> Iterator[bytes]:
    """The stream of ``encode(columns)`` in pieces: the header with the first ``chunk_rows`` rows, the next
    rows, ..., the last piece ending with the trailer (one piece when the rows fit in one). Each piece is
    encoded when it is asked for."""
    n = len(columns[0][1]) if columns else 0
    starts = list(range(0, n, chunk_rows)) or [0]
    for k, lo in enumerate(starts):
        rows = encode_rows([(kind, values[lo:lo + chunk_rows]) for kind, values in columns])
        yield b"".join((_HEADER if k == 0 else b"", rows, _TRAILER if k == len(starts) - 1 else b""))


def encode_rows(columns: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The rows of a binary COPY stream of these columns, without the header and trailer."""
    kinds = [kind for kind, _ in columns]
    dtype = _row_dtype(kinds)
    n = len(columns[0][1]) if columns else 0
    rows = np.empty(n, dtype=dtype)
    rows["n"] = len(columns)
    for i, (_, values) in enumerate(columns):
        if len(values) != n:
            raise ValueError(f"column {i} has {len(values)} values, expected {n}")
        rows[f"l{i}"] = _width(kinds[i])
        rows[f"v{i}"] = values
    return rows.tobytes()


def decode(data: bytes | bytearray | memoryview, kinds: Sequence[str]) -> list[np.ndarray]:
    """Native-endian column arrays from a binary COPY stream of non-NULL ``kinds`` columns."""
    buf = memoryview(data)
    if bytes(buf[: len(SIGNATURE)]) != SIGNATURE:
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext = int.from_bytes(buf[15:19], "big")
    start = 19 + ext
    dtype = _row_dtype(kinds)
    body = len(buf) - start - len(_TRAILER)
    if body < 0 or body % dtype.itemsize or bytes(buf[len(buf) - 2:]) != _TRAILER:
        raise ValueError("binary COPY stream has an unexpected size (NULL or variable-width field?)")
    rows = np.frombuffer(buf, dtype=dtype, count=body // dtype.itemsize, offset=start)
    if rows.shape[0] and (np.any(rows["n"] != len(kinds))
                          or any(np.any(rows[f"l{i}"] != _width(kind)) for i, kind in enumerate(kinds))):
        raise ValueError("binary COPY stream has an unexpected field count or a NULL value")
    out = []
    for i, kind in enumerate(kinds):
        out.append(rows[f"v{i}"].astype(_NATIVE[kind]))
    return out
