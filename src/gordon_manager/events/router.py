"""GET /ws: the console's live event stream (protocol in asyncapi.yaml and the README); GET /asyncapi.yaml."""

from __future__ import annotations

from fastapi import APIRouter, Response, WebSocket

router = APIRouter(tags=["events"])


@router.websocket("/ws")
async def live_events(websocket: WebSocket) -> None:
    """Upgrade to a WebSocket and serve the JSON event protocol until either side closes."""
    service = websocket.app.state.ctx.services.events
    if service is None:  # the events domain is not started (never in `serve`)
        await websocket.close(code=1013, reason="live events unavailable")
        return
    await service.serve(websocket)


@router.get("/asyncapi.yaml", include_in_schema=False)
async def asyncapi_document() -> Response:
    """The AsyncAPI document of /ws (and of the bus), like /openapi.json open without the read token."""
    from gordon_manager.events.asyncapi import render  # built on first use, then cached

    return Response(render(), media_type="application/yaml")
