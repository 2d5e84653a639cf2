"""SQL composition for filtered lists: constant fragments only, every value a parameter."""

from __future__ import annotations

from typing import Any


def compose(base: str, filters: dict[str, str], values: dict[str, Any], tail: str) -> tuple[str, list[Any]]:
    """``base WHERE <fragments> tail`` for the non-None ``values``; returns (sql, args).

    Only constant fragments from ``filters`` enter the text; ``tail`` may use ``{limit}``.
    """
    clauses, args = [], []
    for key, value in values.items():
        if value is None or key == "limit":
            continue
        args.append(value)
        clauses.append(filters[key].format(len(args)))
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    args.append(values.get("limit"))
    return base + where + " " + tail.format(limit=f"${len(args)}"), args
