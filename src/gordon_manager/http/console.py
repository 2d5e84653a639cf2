"""The operator console: the single-page app of ``console/`` (Vite + React + TypeScript), served at ``/``.

Same origin as the API, so the browser needs no CORS and the edge's origin check lets it through.
The build (``make console``, i.e. ``npm ci`` + ``npm run build`` in ``console/``) writes
``console/dist``: ``index.html`` and hashed assets under ``dist/assets/``. Here:

- ``GET /`` and every client-side route under ``/ui/`` (``/ui/bots/7``, ``/ui/deploys`` …) answer
  ``index.html`` (``Cache-Control: no-cache``) under a ``Content-Security-Policy`` of this origin only:
  no inline script, no CDN, ``connect-src 'self'`` (fetch and the same-origin ``/ws``);
- ``GET /ui/assets/<name>`` answers a built asset with a long cache (its name carries its hash);
- without a build, ``/`` answers a 503 page saying how to build the console (``make console``).

The pages and assets need no read token (``http.edge.is_public``): the app calls the API with the
tokens the operator enters. None of these routes is in the OpenAPI document.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from gordon_manager.errors import NotFound

PAGES_PREFIX = "/ui/"
ASSETS_PREFIX = "/ui/assets/"


def default_dist() -> Path:
    """``console/dist`` of the checkout (``GORDON_MANAGER_CONSOLE_DIST`` overrides it)."""
    configured = os.environ.get("GORDON_MANAGER_CONSOLE_DIST")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "console" / "dist"


# Only this origin. Styles: the app's stylesheet plus the `style` attributes React writes (row
# positions of the virtual list, chart sizes), hence 'unsafe-inline' for styles only; lightweight-charts
# draws on canvas. connect-src 'self' covers the same-origin ws:/wss: (CSP Level 3, every current browser).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SECURITY = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
             "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
_PAGE_HEADERS = {**_SECURITY, "Cache-Control": "no-cache"}
_ASSET_HEADERS = {**_SECURITY, "Cache-Control": "public, max-age=31536000, immutable"}

_MISSING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gordon-manager console: not built</title></head>
<body><main><h1>The console is not built</h1>
<p>No <code>{index}</code>. Build it with <code>make console</code> (Node.js &ge; 20 and npm:
<code>cd console &amp;&amp; npm ci &amp;&amp; npm run build</code>), or start the manager with
<code>make run</code>, which builds it when it is missing or stale.</p>
<p>The API is served meanwhile: <a href="/docs">/docs</a>.</p></main></body></html>
"""

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
          ".json": "application/json", ".map": "application/json", ".woff2": "font/woff2", ".png": "image/png"}


def is_public(path: str) -> bool:
    """The console's own paths (pages and assets), open without the read token."""
    return path == "/" or path.startswith(PAGES_PREFIX)


class ConsoleFiles:
    """The built console on disk; index.html is re-read when its mtime changes (a rebuild while serving)."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self._index: tuple[float, bytes] | None = None

    def index(self) -> bytes | None:
        path = self.dist / "index.html"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._index is None or self._index[0] != mtime:
            self._index = (mtime, path.read_bytes())
        return self._index[1]

    def asset(self, name: str) -> Path | None:
        root = (self.dist / "assets").resolve()
        candidate = (root / name).resolve()
        if candidate.parent != root or not candidate.is_file():
            return None
        return candidate


def install_console(app: FastAPI, dist: Path | None = None) -> None:
    """Serve the console at ``/`` and ``/ui/...`` (not in the OpenAPI document)."""
    files = ConsoleFiles(dist or default_dist())

    def page() -> Response:
        body = files.index()
        if body is None:
            missing = _MISSING.format(index=html.escape(str(files.dist / "index.html")))
            return HTMLResponse(missing, status_code=503, headers=_PAGE_HEADERS)
        return HTMLResponse(body, headers=_PAGE_HEADERS)

    @app.get("/", include_in_schema=False)
    async def console_root() -> Response:
        return page()

    @app.get(ASSETS_PREFIX + "{name}", include_in_schema=False)
    async def console_asset(request: Request, name: str) -> Response:
        path = files.asset(name)
        if path is None:
            raise NotFound(f"No console asset named {name!r}.")
        stat = path.stat()
        etag = '"' + hashlib.sha1(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:24] + '"'
        headers = {**_ASSET_HEADERS, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=media, headers=headers)

    @app.get(PAGES_PREFIX + "{route:path}", include_in_schema=False)
    async def console_page(route: str) -> Response:
        if route.startswith("assets/"):
            raise NotFound(f"No console asset named {route[7:]!r}.")
        return page()
