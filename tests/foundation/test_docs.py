"""/docs and /redoc served offline (issue 15, item 6): packaged assets, no CDN, a self-only CSP.

The browser test loads both pages in Debian's Chromium (driven by Playwright) with every request
answered by the in-process app and every other one refused and recorded: the pages must render
from the manager alone, with no CSP violation.
"""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlsplit

import httpx
import pytest

from tests.foundation.test_edge import app_with  # noqa: F401  (fixture)

PAGES = ("/docs", "/redoc")
_REFERENCES = re.compile(r'(?:src|href)="([^"]*)"')


def references(html: str) -> list[str]:
    return _REFERENCES.findall(html)


@pytest.mark.parametrize("page", PAGES)
async def test_the_page_references_only_local_assets_and_they_are_served(client, page):
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self';" in csp and "connect-src 'self'" in csp
    assert "http" not in csp and "*" not in csp
    assert "<script>" not in response.text and "cdn" not in response.text.lower()
    urls = references(response.text)
    assert urls and all(url.startswith("/docs/assets/") for url in urls), urls
    assert "/openapi.json" in response.text
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        expected = {"js": "text/javascript", "css": "text/css", "png": "image/png"}[url.rsplit(".", 1)[1]]
        assert asset.headers["content-type"].startswith(expected), (url, asset.headers["content-type"])
        assert asset.headers["x-content-type-options"] == "nosniff" and len(asset.content) > 100
        assert b"cdn.jsdelivr" not in asset.content or url.endswith(".js")  # bundles mention URLs in comments


async def test_swagger_ui_keeps_the_authorization_and_no_validator(client):
    script = (await client.get("/docs/assets/swagger-init.js")).text
    assert "persistAuthorization: true" in script and "validatorUrl: null" in script


async def test_an_unknown_asset_is_a_404_problem(client):
    response = await client.get("/docs/assets/../../etc/passwd")
    assert response.status_code == 404
    response = await client.get("/docs/assets/evil.js")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"


async def test_the_docs_need_no_read_token(app_with):
    async with app_with(read_token="read-token-0123456789") as http:
        assert (await http.get("/bots")).status_code == 401
        for url in ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js",
                    "/docs/assets/redoc.standalone.js", "/docs/assets/swagger-init.js", "/docs/assets/favicon.png"):
            assert (await http.get(url)).status_code == 200, url


async def test_a_root_path_prefixes_every_url(app):
    transport = httpx.ASGITransport(app=app, root_path="/manager")
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        page = (await http.get("/docs")).text
    assert all(url.startswith("/manager/docs/assets/") for url in references(page))
    assert 'data-openapi-url="/manager/openapi.json"' in page


# -- a real browser, offline --------------------------------------------------------------------------
BASE = "http://manager.localhost"


async def _open(chromium: str, app, page_path: str, ready: str, act=None,
                sent: list | None = None) -> tuple[dict, list[str], list[str]]:
    """Load ``page_path`` with the network limited to the in-process app, then ``await act(page)``;
    returns (what the page shows, requests refused, console errors). ``sent`` collects (method, path,
    headers) of every request the app answered."""
    from playwright.async_api import async_playwright

    base = BASE
    refused: list[str] = []
    errors: list[str] = []
    sent = [] if sent is None else sent
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base) as http, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = await browser.new_context(service_workers="block")

            async def handle(route) -> None:
                request = route.request
                if not request.url.startswith(base + "/"):
                    refused.append(request.url)
                    await route.abort("blockedbyclient")
                    return
                path = urlsplit(request.url)
                sent.append((request.method, path.path, dict(request.headers)))
                answer = await http.request(request.method, path.path + (f"?{path.query}" if path.query else ""),
                                            headers={k: v for k, v in request.headers.items()
                                                     if k.lower() not in ("host", "content-length")},
                                            content=request.post_data_buffer)
                await route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)

            await context.route("**/*", handle)
            page = await context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(base + page_path)
            await page.wait_for_selector(ready, timeout=30_000)
            if act is not None:
                await act(page)
            shown = await page.evaluate("""() => ({
                text: document.body.innerText,
                authorize: !!document.querySelector('.swagger-ui .auth-wrapper .authorize'),
                operations: document.querySelectorAll('.swagger-ui .opblock').length,
            })""")
        finally:
            await browser.close()
    return shown, refused, errors


async def test_redoc_renders_from_the_manager_alone(app, chromium_path):
    shown, refused, errors = await _open(chromium_path, app, "/redoc", "h1")
    assert refused == [] and errors == [], (refused, errors)
    assert "gordon-manager" in shown["text"] and "List bot configs" in shown["text"]


async def test_assets_are_revalidated_by_etag(client):
    first = await client.get("/docs/assets/redoc.standalone.js")
    assert b"cdn.redoc.ly" not in first.content  # the sidebar credit's image: no other host, ever
    again = await client.get("/docs/assets/redoc.standalone.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


async def test_swagger_ui_renders_and_authorizes_from_the_manager_alone(app, chromium_path):
    """Swagger UI renders with nothing but the manager; with the operator token authorized, GET /config
    (operator only) carries it, also after a reload (persistAuthorization)."""
    from tests.conftest import TEST_OPERATOR_TOKEN

    schemes = app.openapi().get("components", {}).get("securitySchemes", {})
    if not any(s.get("name") == "X-Operator-Token" for s in schemes.values()):  # not declared: render only
        shown, refused, errors = await _open(chromium_path, app, "/docs", ".swagger-ui .info .title")
        assert refused == [] and errors == [], (refused, errors)
        assert "gordon-manager" in shown["text"] and shown["operations"] > 20
        return
    config = app.openapi()["paths"]["/config"]["get"]
    block = f"#operations-{config['tags'][0]}-{config['operationId']}"

    async def authorize_and_try(page) -> None:
        await page.click(".swagger-ui .auth-wrapper .authorize")
        field = page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first
        await field.fill(TEST_OPERATOR_TOKEN)
        await page.locator(".modal-ux .auth-btn-wrapper .authorize").first.click()
        await page.locator(".modal-ux .btn-done").first.click()
        await page.reload()
        await page.wait_for_selector(block, timeout=30_000)
        await page.click(f"{block} .opblock-summary")
        await page.click(f"{block} .try-out__btn")
        await page.click(f"{block} .execute")
        await page.wait_for_selector(f"{block} .live-responses-table .response-col_status", timeout=30_000)

    sent: list = []
    shown, refused, errors = await _open(chromium_path, app, "/docs", ".swagger-ui .info .title",
                                         act=authorize_and_try, sent=sent)
    assert refused == [] and errors == [], (refused, errors)
    assert "gordon-manager" in shown["text"] and shown["operations"] > 20 and shown["authorize"]
    calls = [headers for method, path, headers in sent if (method, path) == ("GET", "/config")]
    assert calls and calls[-1].get("x-operator-token") == TEST_OPERATOR_TOKEN, calls
    assert "200" in shown["text"]
