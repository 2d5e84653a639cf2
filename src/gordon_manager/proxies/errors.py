"""Errors of the proxies domain (on top of PeerError / PeerTimeout from ``gordon_manager.errors``)."""

from __future__ import annotations

from gordon_manager.errors import ClientError, GordonError


class PeerNotConfigured(GordonError):
    """The peer's URL (or forward token) is not set: the feature is off, not broken (503)."""

    status = 503
    type_slug = "peer-not-configured"
    title = "Peer not configured"


class MalformedBody(ClientError):
    """The request body is not valid JSON (400, same slug as the framework's own check)."""

    type_slug = "malformed-json"
    title = "Bad request"
