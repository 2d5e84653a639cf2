"""Query parameters several list endpoints share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from gordon_manager.http.values import Rfc3339

From = Annotated[Rfc3339 | None, Query(alias="from", description="Inclusive lower bound (RFC 3339 with offset).")]
To = Annotated[Rfc3339 | None, Query(alias="to", description="Exclusive upper bound (RFC 3339 with offset).")]
