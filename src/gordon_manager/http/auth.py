"""Operator-token authorisation of mutations (X-Operator-Token, constant-time, bytes).

Missing token → 401, wrong token → 403. The header is compared as bytes with
``hmac.compare_digest`` so non-ASCII input is just a wrong token (403), never a 500.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from gordon_manager.datadir import load_or_generate
from gordon_manager.errors import Forbidden, Unauthorized
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)
HEADER = "x-operator-token"
OPERATOR_ACTOR = "operator"


class OperatorAuth:
    """Holds the expected token as bytes and checks presented ones in constant time."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("operator token must not be empty")
        self._expected = token.encode("utf-8")

    def check(self, presented: bytes | None) -> None:
        """Raise Unauthorized (missing) or Forbidden (wrong)."""
        if not presented:
            metrics.OPERATOR_AUTH_FAILURES.labels(status="401").inc()
            raise Unauthorized("This endpoint requires the X-Operator-Token header.")
        if not hmac.compare_digest(presented, self._expected):
            metrics.OPERATOR_AUTH_FAILURES.labels(status="403").inc()
            raise Forbidden("The operator token is not valid.")


def load_or_generate_token(configured: str | None, data_dir: Path) -> str:
    """The configured token, or one generated once into ``data_dir/operator-token`` (mode 0600)."""
    if configured:
        return configured
    token, generated = load_or_generate(data_dir, "operator-token")
    path = str(data_dir / "operator-token")
    if generated:
        logger.warning("no GORDON_MANAGER_OPERATOR_TOKEN set: generated one", extra={"path": path})
    else:
        logger.info("operator token loaded", extra={"path": path})
    return token


def _raw_header(request: Request) -> bytes | None:
    for key, value in request.scope.get("headers", ()):
        if key == HEADER.encode():
            return value
    return None


async def require_operator(request: Request) -> str:
    """Dependency for every mutating route: returns the actor name."""
    auth: OperatorAuth = request.app.state.operator_auth
    auth.check(_raw_header(request))
    return OPERATOR_ACTOR


Operator = Annotated[str, Depends(require_operator)]
