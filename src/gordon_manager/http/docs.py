"""The API's documentation pages, served offline: Swagger UI at /docs, ReDoc at /redoc.

FastAPI's own pages load their scripts from a CDN, so they are blank without the internet and run
whatever that CDN serves. Here both UIs come from a Python package, ``fastapi-offline`` (Swagger
UI's ``swagger-ui-bundle.js``/``swagger-ui.css`` and ReDoc's ``redoc.standalone.js``, refreshed
with each of its releases), and are served by the manager under ``/docs/assets/``; the two pages
start them with a small script of ours, so they hold no inline script and a
``Content-Security-Policy`` allows scripts, styles, fonts and requests from this origin only.

The pages, the assets and ``/openapi.json`` need no read token (``http.edge.PUBLIC_PATHS``). In
Swagger UI the Authorize button takes the operator (and read) token the document declares as apiKey
schemes; ``persistAuthorization`` keeps it across reloads (in the browser's local storage).
"""

from __future__ import annotations

import functools
import hashlib
import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from gordon_manager.errors import NotFound

VENDOR_DIR = Path(fastapi_offline.__file__).parent / "static"

ASSETS_PREFIX = "/docs/assets/"
_VENDOR = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

# Ours: start each UI from the URL the page names (a data attribute; no inline script).
_SWAGGER_INIT = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    displayRequestDuration: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
  });
});
"""
_REDOC_INIT = """\
window.addEventListener("load", function () {
  var root = document.getElementById("redoc");
  Redoc.init(root.dataset.openapiUrl, {expandResponses: "200,201,202"}, root);
});
"""
_OURS = {"swagger-init.js": _SWAGGER_INIT, "redoc-init.js": _REDOC_INIT}
ASSET_PATHS = frozenset(ASSETS_PREFIX + name for name in (*_VENDOR, *_OURS))
"""Every asset the pages load (exempt from the read token, like the pages)."""

# Only this origin. Swagger UI draws its icons as data: URIs; ReDoc writes its styles as <style>
# elements at run time (styled-components) and builds its search worker from a blob.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}

# One page shape for both UIs: (stylesheets, root element id, scripts) differ.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}}</title>
<link rel="icon" type="image/png" href="{{assets}}favicon.png">
{styles}</head>
<body>
<div id="{root}" data-openapi-url="{{openapi}}"></div>
{scripts}</body>
</html>
"""


def _template(root: str, *, styles: tuple[str, ...] = (), scripts: tuple[str, ...]) -> str:
    return _PAGE.format(
        root=root,
        styles="".join(f'<link rel="stylesheet" href="{{assets}}{name}">\n' for name in styles),
        scripts="".join(f'<script src="{{assets}}{name}"></script>\n' for name in scripts))


_SWAGGER_PAGE = _template("swagger-ui", styles=("swagger-ui.css",),
                          scripts=("swagger-ui-bundle.js", "swagger-init.js"))
_REDOC_PAGE = _template("redoc", scripts=("redoc.standalone.js", "redoc-init.js"))


def _page(request: Request, template: str, title: str) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    openapi_url = request.app.openapi_url or "/openapi.json"
    body = template.format(title=html.escape(title), assets=html.escape(root + ASSETS_PREFIX),
                           openapi=html.escape(root + openapi_url))
    return HTMLResponse(body, headers=_PAGE_HEADERS)


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (the app is created with ``docs_url=None, redoc_url=None``)."""

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _page(request, _SWAGGER_PAGE, f"{app.title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _page(request, _REDOC_PAGE, f"{app.title} - ReDoc")

    @app.get(ASSETS_PREFIX + "{name}", include_in_schema=False)
    async def docs_asset(request: Request, name: str) -> Response:
        if name not in _VENDOR and name not in _OURS:
            raise NotFound(f"No documentation asset named {name!r}.")
        body, etag = _asset(name)
        headers = {**_ASSET_HEADERS, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=_VENDOR.get(name, "text/javascript; charset=utf-8"), headers=headers)


# ReDoc's sidebar credit shows an image from Redocly's CDN, whatever the options: it is pointed at
# an empty data: URI instead (the image fails to load and ReDoc hides it), so the page asks nothing
# of any other host and the CSP has nothing to block.
_REWRITES = {"redoc.standalone.js": ((b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,"),)}


@functools.cache
def _asset(name: str) -> tuple[bytes, str]:
    """An asset's bytes (read once) and its ETag."""
    if name in _OURS:
        body = _OURS[name].encode()
    else:
        body = (VENDOR_DIR / name).read_bytes()
        for old, new in _REWRITES.get(name, ()):
            body = body.replace(old, new)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
