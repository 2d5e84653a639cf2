"""Swarm mode on the test daemon (single manager node on 127.0.0.1 inside its namespace)."""

from __future__ import annotations

import httpx


def init_swarm(client: httpx.Client) -> str:
    """POST /swarm/init on the raw socket (the proxy refuses it); returns the node id."""
    info = client.get("/info").json()
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") == "active":
        return str(swarm.get("NodeID"))
    response = client.post(
        "/swarm/init",
        json={"ListenAddr": "127.0.0.1:2377", "AdvertiseAddr": "127.0.0.1", "ForceNewCluster": False},
    )
    response.raise_for_status()
    return str(response.json())


def leave_swarm(client: httpx.Client) -> None:
    """Force-leave swarm mode; no-op when inactive."""
    response = client.post("/swarm/leave", params={"force": "1"})
    if response.status_code not in (200, 503):
        response.raise_for_status()
