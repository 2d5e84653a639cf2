"""The service's exception hierarchy.

Adapters translate library errors (asyncpg, httpx, nats, docker) into these with ``raise … from``
so callers and clients never see a library exception. The HTTP layer maps each to a problem+json
response by its ``status`` and ``type_slug``.
"""

from __future__ import annotations

from typing import Any


class GordonError(Exception):
    """Base of every error the service raises on purpose."""

    status: int = 500
    type_slug: str = "internal"
    title: str = "Internal error"
    headers: dict[str, str] = {}  # response headers of this kind of error (read-only), e.g. Retry-After

    def __init__(self, detail: str = "", *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}


class ConfigurationError(GordonError):
    """The service is configured in a way that cannot work (raised at start-up)."""

    type_slug = "configuration"
    title = "Configuration error"


class DatabaseUnavailable(GordonError):
    """PostgreSQL cannot be reached or answered with a connection-level failure."""

    status = 503
    type_slug = "database-unavailable"
    title = "Database unavailable"


class MigrationError(GordonError):
    """A migration failed or the recorded history disagrees with the files."""

    type_slug = "migration"
    title = "Migration error"


class ClientError(GordonError):
    """Base of errors caused by what a client sent (always 4xx)."""

    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class NotFound(ClientError):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(ClientError):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class PreconditionFailed(ClientError):
    status = 412
    type_slug = "precondition-failed"
    title = "Precondition failed"


class PreconditionRequired(ClientError):
    status = 428
    type_slug = "precondition-required"
    title = "Precondition required"


class Unprocessable(ClientError):
    status = 422
    type_slug = "validation"
    title = "Validation failed"


class Unauthorized(ClientError):
    status = 401
    type_slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(ClientError):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class BadCursor(ClientError):
    status = 400
    type_slug = "bad-cursor"
    title = "Invalid cursor"


class PeerError(GordonError):
    """A peer we proxy to (gordon-risk, Prometheus, …) failed or timed out."""

    status = 502
    type_slug = "bad-gateway"
    title = "Upstream error"


class PeerTimeout(PeerError):
    status = 504
    type_slug = "gateway-timeout"
    title = "Upstream timeout"
