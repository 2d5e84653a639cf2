"""GET /ws: the console's live event stream (protocol in asyncapi.yaml and the README)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

router = APIRouter(tags=["events"])


@router.websocket("/ws")
async def live_events(websocket: WebSocket) -> None:
    """Upgrade to a WebSocket and serve the JSON event protocol until either side closes."""
    service = websocket.app.state.ctx.services.get("events")
    if service is None:  # the events domain is not started (never in `serve`)
        await websocket.close(code=1013, reason="live events unavailable")
        return
    await service.serve(websocket)
