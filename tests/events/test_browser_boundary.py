"""Tried as a user's browser would: a page on another origin can neither read the API nor open /ws.

Real Chromium (Debian's package, driven by Playwright) loads a page from a second local HTTP
server — another origin — whose script calls the manager. The WebSocket part is the one that
matters: browsers apply no same-origin policy to WebSockets, so only the manager's Origin check
stands between such a page and the live stream (issue 14's hijacking reproduction). The same page
on an origin listed in GORDON_MANAGER_CORS_ORIGINS succeeds, which shows the harness can tell the two apart.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.infra.net import free_port

PAGE = """<!doctype html><html><body><script>
async function probe(manager) {
  const out = {};
  try {
    const r = await fetch(manager + "/bots");
    out.fetch = "status " + r.status + " " + (await r.text()).slice(0, 40);
  } catch (e) { out.fetch = "blocked: " + e.name; }
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(manager.replace("http", "ws") + "/ws");
    ws.onmessage = (m) => { resolve("open: " + m.data.slice(0, 30)); ws.close(); };
    ws.onerror = () => resolve("refused");
  });
  return out;
}
</script></body></html>"""


@pytest.fixture
def other_origin() -> Iterator[str]:
    """A plain HTTP server on another port serving PAGE: another origin than the manager's."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


async def probe_from(chromium: str, page_url: str, manager_url: str) -> dict[str, str]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            return await page.evaluate("(m) => probe(m)", manager_url)
        finally:
            await browser.close()


async def test_a_page_on_another_origin_can_neither_fetch_nor_open_ws(start_manager, chromium_path, other_origin):
    async with start_manager() as live:
        result = await probe_from(chromium_path, other_origin + "/", live.http_url)
    assert result == {"fetch": "blocked: TypeError", "ws": "refused"}, result


async def test_the_same_page_on_an_allowed_origin_reads_and_listens(start_manager, chromium_path, other_origin):
    async with start_manager(cors_origins=other_origin) as live:
        result = await probe_from(chromium_path, other_origin + "/", live.http_url)
    assert result["fetch"].startswith("status 200 {\"items\""), result
    assert result["ws"].startswith('open: {"type":"welcome"'), result
