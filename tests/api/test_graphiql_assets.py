"""GraphiQL's page and assets come from the server itself (no CDN), cached by content.

The browser test (tests/streaming/test_graphiql_page.py) shows the page working with the
network blocked; these check what the server answers, with or without a browser.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from multidict import CIMultiDict

from aipasta import graphiql
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


async def page(app: RunningApp) -> tuple[int, CIMultiDict[str], str]:
    async with app.http.get(f"{app.base_url}/graphql", headers={"Accept": "text/html"}) as r:
        return r.status, r.headers.copy(), await r.text()


async def test_the_page_loads_only_its_own_files_each_cached_by_its_content(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    status, headers, html = await page(app)
    assert status == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    links = _Links()
    links.feed(html)
    assets = [url for url in links.urls if not url.startswith("data:")]
    names = {Path(urlsplit(url).path).name for url in assets}
    assert {
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "graphiql.min.css",
        "plugin-explorer.umd.js",
        "plugin-explorer.css",
    } <= names
    assert "unpkg.com" not in html and "cdn" not in html.lower()

    for url in assets:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", "")  # this server, nowhere else
        assert parts.path.startswith("/graphiql/static/") and parts.query.startswith("v=")
        async with app.http.get(f"{app.base_url}{url}") as r:
            assert r.status == 200, url
            assert r.content_type == CONTENT_TYPES[Path(parts.path).suffix]
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            body = await r.read()
        assert body == (graphiql.STATIC_DIR / Path(parts.path).name).read_bytes()


async def test_no_assets_where_graphiql_is_off_and_nothing_outside_the_folder(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    off = await start_app(AIPASTA_GRAPHIQL="false")
    async with off.http.get(f"{off.base_url}/graphiql/static/graphiql.min.js") as r:
        assert r.status == 404

    on = await start_app()
    for path in ("missing.js", "..%2F__init__.py", "%2e%2e/page.html"):
        async with on.http.get(f"{on.base_url}/graphiql/static/{path}") as r:
            assert r.status == 404, path
