"""The console as HTTP: `/` and every `/ui/...` page answer index.html under a CSP, assets are cached, no read token needed.

In-process (the real app, create_app) against a small fake build, so these run without Node.js; the
real build is what tests/console/test_browser.py loads.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gordon_manager.http.console import CONTENT_SECURITY_POLICY, ConsoleFiles, default_dist, is_public
from tests.conftest import make_settings

INDEX = b'<!doctype html><html lang="en"><head><script type="module" src="/ui/assets/index-abc123.js"></script></head><body><div id="root"></div></body></html>'
READ_TOKEN = "console-read-token-0123456789"


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-abc123.js").write_text("console.log('hi')")
    (dist / "assets" / "index-abc123.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("outside")
    monkeypatch.setenv("GORDON_MANAGER_CONSOLE_DIST", str(dist))
    return dist


@pytest.fixture
async def http(database, data_dir, fake_dist):
    """The real app (read token set) over ASGI."""
    from gordon_manager.app import create_app

    app = create_app(make_settings(database, data_dir, read_token=SecretStr(READ_TOKEN)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            yield client


async def test_root_and_client_routes_answer_the_index_under_a_csp_without_the_read_token(http):
    for path in ("/", "/ui/bots/7", "/ui/deploys", "/ui/backtests", "/ui/nowhere/deep"):
        response = await http.get(path)
        assert response.status_code == 200, path
        assert response.content == INDEX
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-frame-options"] == "DENY"
    csp = CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "http" not in csp  # no other host, no CDN
    # The API itself still needs the read token.
    assert (await http.get("/bots")).status_code == 401


async def test_assets_are_served_with_a_long_cache_and_an_etag(http):
    response = await http.get("/ui/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.text == "console.log('hi')"
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "immutable" in response.headers["cache-control"]
    again = await http.get("/ui/assets/index-abc123.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert (await http.get("/ui/assets/index-abc123.css")).headers["content-type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize("path", ["/ui/assets/missing.js", "/ui/assets/..%2F..%2Fsecret.txt", "/ui/assets/sub/x.js"])
async def test_unknown_or_escaping_assets_are_404_problems(http, path):
    response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_missing_build_says_how_to_build_it(http, fake_dist):
    (fake_dist / "index.html").unlink()
    response = await http.get("/")
    assert response.status_code == 503
    assert "make console" in response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_a_rebuild_is_picked_up_without_a_restart(http, fake_dist):
    assert (await http.get("/")).content == INDEX
    index = fake_dist / "index.html"
    index.write_bytes(b"<!doctype html><title>v2</title>")
    import os
    stat = index.stat()
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert (await http.get("/ui/risk")).content == b"<!doctype html><title>v2</title>"


async def test_the_console_routes_are_not_in_the_openapi_document(http):
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


def test_helpers(tmp_path, monkeypatch):
    assert is_public("/") and is_public("/ui/bots/1") and is_public("/ui/assets/x.js")
    assert not is_public("/bots") and not is_public("/uix")
    monkeypatch.delenv("GORDON_MANAGER_CONSOLE_DIST", raising=False)
    assert default_dist() == Path(__file__).resolve().parents[2] / "console" / "dist"
    files = ConsoleFiles(tmp_path / "none")
    assert files.index() is None and files.asset("x.js") is None
