"""Row-wise JSON from columns, for the equity pages: the C extension ``_rowjson`` when it is built, else its
pure-Python twin ``_rowjson_py`` (same bytes, same errors; slower). ``IMPLEMENTATION`` says which."""

from __future__ import annotations

try:
    from gordon_manager._rowjson import decimals, rows, timestamps

    IMPLEMENTATION = "c"
except ImportError:  # pragma: no cover - the package builds the extension; this is the fallback
    from gordon_manager._rowjson_py import decimals, rows, timestamps

    IMPLEMENTATION = "python"

__all__ = ["IMPLEMENTATION", "decimals", "rows", "timestamps"]
