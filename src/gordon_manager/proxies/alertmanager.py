"""AlertManager client: the firing alerts (active, not silenced, not inhibited), normalised."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from gordon_manager.errors import PeerError
from gordon_manager.proxies.schemas import FiringAlert
from gordon_manager.proxies.upstream import PeerHttp, json_body

logger = logging.getLogger(__name__)
PEER = "alertmanager"
ENV = "GORDON_MANAGER__GORDON_ALERTMANAGER_URL"
# Ask AlertManager to filter (v2 API); normalise() re-checks the state in case it did not.
FIRING_FILTER = {"active": "true", "silenced": "false", "inhibited": "false", "unprocessed": "false"}


class AlertmanagerClient:
    """Reads alerts from AlertManager's v2 API."""

    def __init__(self, http: PeerHttp, base_url: str) -> None:
        self._http = http
        self._base = base_url

    async def firing(self) -> list[FiringAlert]:
        """Every firing alert, newest first."""
        response = await self._http.request(PEER, "GET", f"{self._base}/api/v2/alerts", params=FIRING_FILTER)
        body = json_body(response, peer=PEER)
        if response.status_code != 200 or not isinstance(body, list):
            raise PeerError(f"alertmanager answered {response.status_code} to GET /api/v2/alerts",
                            extra={"peer": PEER})
        alerts = [a for a in (normalise(raw) for raw in body) if a is not None]
        alerts.sort(key=lambda a: (a.starts_at, a.fingerprint), reverse=True)
        return alerts


def normalise(raw: Any) -> FiringAlert | None:
    """One v2 alert as a FiringAlert; None when it is not firing or is malformed (logged)."""
    if not isinstance(raw, dict):
        return None
    status = raw.get("status") or {}
    if status.get("state") != "active" or status.get("silencedBy") or status.get("inhibitedBy"):
        return None
    labels = {str(k): str(v) for k, v in (raw.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (raw.get("annotations") or {}).items()}
    try:
        return FiringAlert(
            fingerprint=str(raw.get("fingerprint", "")),
            alertname=labels.get("alertname", ""),
            severity=labels.get("severity"),
            summary=annotations.get("summary"),
            description=annotations.get("description"),
            starts_at=raw.get("startsAt"),
            ends_at=raw.get("endsAt"),
            updated_at=raw.get("updatedAt"),
            generator_url=raw.get("generatorURL") or None,
            receivers=[str(r.get("name")) for r in raw.get("receivers") or [] if isinstance(r, dict)],
            labels=labels,
            annotations=annotations,
        )
    except ValidationError:
        logger.warning("skipping a malformed alert from alertmanager", extra={"fingerprint": raw.get("fingerprint")})
        return None
