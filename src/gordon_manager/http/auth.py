"""Tokens: operators (X-Operator-Token, named) and, opt-in, readers (X-Read-Token).

Every presented token is hashed (SHA-256) and compared with ``hmac.compare_digest`` against *every*
known token, without an early exit, so neither the length nor the position of a match shows in
the time taken, and non-ASCII input is just a wrong token (403), never a 500. Missing → 401,
wrong → 403.

Named operators come from ``GORDON_MANAGER_OPERATOR_TOKENS_FILE`` (``name:token`` per line); the
single ``GORDON_MANAGER_OPERATOR_TOKEN`` (or the generated one) is the operator named ``operator``.
The name is the actor of every audit row the request writes.

The edge middleware (http/edge.py) checks the token before the body is read and leaves the verdict
in ``scope["state"]``; the ``Operator`` dependency reads that verdict (and checks itself when no
middleware ran, e.g. a router mounted elsewhere).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import stat
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from gordon_manager.datadir import load_or_generate
from gordon_manager.errors import ConfigurationError, Forbidden, GordonError, Unauthorized
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)
HEADER = "x-operator-token"
READ_HEADER = "x-read-token"
OPERATOR_ACTOR = "operator"
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
STATE_KEY = "gordon_operator"  # scope["state"][STATE_KEY]: the actor, or the GordonError to raise
OPERATOR_DEPENDENCY = "__gordon_operator_dependency__"
"""Set (true) on a dependency that calls ``require_operator`` itself (the risk proxy's, which audits refusals),
so that the OpenAPI document (``http.openapi``) declares its operations as needing ``X-Operator-Token``."""


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenSet:
    """Named tokens, checked in constant time over the whole set."""

    def __init__(self, named: dict[str, str], *, kind: str) -> None:
        if not named or any(not token for token in named.values()):
            raise ValueError(f"{kind} tokens must not be empty")
        self._entries = [(name, _digest(token.encode("utf-8"))) for name, token in named.items()]
        self.kind = kind

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._entries]

    def match(self, presented: bytes) -> str | None:
        """The name whose token is ``presented``, or None (every entry is compared)."""
        digest = _digest(presented)
        found = None
        for name, expected in self._entries:
            if hmac.compare_digest(digest, expected) and found is None:
                found = name
        return found


class OperatorAuth:
    """The operators' tokens; ``check`` returns the actor name or raises 401/403."""

    def __init__(self, token: str | None, named: dict[str, str] | None = None) -> None:
        tokens = dict(named or {})
        if token:
            tokens.setdefault(OPERATOR_ACTOR, token)
        elif token is not None:
            raise ValueError("operator token must not be empty")
        self._tokens = TokenSet(tokens, kind="operator")

    @property
    def names(self) -> list[str]:
        return self._tokens.names

    def match(self, presented: bytes | None) -> str | None:
        return self._tokens.match(presented) if presented else None

    def check(self, presented: bytes | None) -> str:
        """The operator's name; Unauthorized (missing) or Forbidden (wrong)."""
        if not presented:
            metrics.OPERATOR_AUTH_FAILURES.labels(status="401").inc()
            raise Unauthorized("This endpoint requires the X-Operator-Token header.")
        name = self._tokens.match(presented)
        if name is None:
            metrics.OPERATOR_AUTH_FAILURES.labels(status="403").inc()
            raise Forbidden("The operator token is not valid.")
        return name


def load_operator_tokens_file(path: Path) -> dict[str, str]:
    """``name:token`` lines (blank lines and ``#`` comments skipped); ConfigurationError names the bad line."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read GORDON_MANAGER_OPERATOR_TOKENS_FILE {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the operator tokens file is readable by group or others; chmod 600 it",
                       extra={"path": str(path), "mode": oct(stat.S_IMODE(mode))})
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        name, token = name.strip(), token.strip()
        where = f"{path}, line {number}"
        if not sep or not _NAME.match(name):
            raise ConfigurationError(f"{where}: expected `name:token` with a name of letters, digits, ._@- (max 64)")
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigurationError(f"{where}: the token of {name!r} is shorter than {MIN_TOKEN_CHARS} characters")
        if name in tokens:
            raise ConfigurationError(f"{where}: operator {name!r} is listed twice")
        if token in tokens.values():
            raise ConfigurationError(f"{where}: operator {name!r} reuses another operator's token")
        tokens[name] = token
    if not tokens:
        raise ConfigurationError(f"GORDON_MANAGER_OPERATOR_TOKENS_FILE {path} names no operator")
    return tokens


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


def raw_header(scope, name: str) -> bytes | None:
    """The first value of header ``name`` (lower case) as raw bytes."""
    key = name.encode()
    for header, value in scope.get("headers", ()):
        if header == key:
            return value
    return None


async def require_operator(request: Request) -> str:
    """Dependency for every mutating route: returns the actor name (the verdict of the edge if it ran)."""
    verdict = request.scope.get("state", {}).get(STATE_KEY)
    if isinstance(verdict, GordonError):
        raise verdict
    if isinstance(verdict, str):
        return verdict
    auth: OperatorAuth = request.app.state.operator_auth
    return auth.check(raw_header(request.scope, HEADER))


Operator = Annotated[str, Depends(require_operator)]
