"""GraphiQL served from files shipped in this package: nothing comes from a CDN.

The page (page.html) names its assets as `{{file}}`; each becomes
`/graphiql/static/<file>?v=<content hash>`, so the assets can be cached for a year and a
new version of a file is a new URL. The third-party files in static/ and their licences
in licenses/ come from npm through scripts/fetch-graphiql-assets.sh (versions in
licenses/VERSIONS). Both the page and the assets exist only where GraphiQL is on
(`settings.graphiql_enabled`).
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import cache
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from aipasta.settings import Settings

STATIC_PATH = "/graphiql/static"
STATIC_DIR = Path(__file__).with_name("static")
PAGE = Path(__file__).with_name("page.html")
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
# Everything the page loads is its own; GraphiQL and CodeMirror set inline styles, and
# GraphiQL's fonts and icons are data: URLs. connect-src 'self' covers the websocket.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSET = re.compile(r"\{\{([A-Za-z0-9._-]+)\}\}")


def _asset_url(match: re.Match[str]) -> str:
    name = match.group(1)
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:16]
    return f"{STATIC_PATH}/{name}?v={digest}"


@cache
def page_html() -> str:
    """The page with its assets' URLs, built once."""
    return _ASSET.sub(_asset_url, PAGE.read_text(encoding="utf-8"))


def graphiql_page() -> HTMLResponse:
    return HTMLResponse(
        page_html(),
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
    )


class GraphiQLAssets(StaticFiles):
    """Starlette's static files (ETag, Last-Modified, HEAD), cached long: URLs carry
    their content's hash."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = ASSET_CACHE_CONTROL
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def graphiql_routes(settings: Settings) -> list[BaseRoute]:
    """The asset route, where GraphiQL is on; none otherwise. The page is built here, at
    start-up (hashing the assets reads them; a missing one stops the start)."""
    if not settings.graphiql_enabled:
        return []
    page_html()
    return [Mount(STATIC_PATH, GraphiQLAssets(directory=STATIC_DIR), name="graphiql-static")]


__all__ = ["STATIC_PATH", "graphiql_page", "graphiql_routes"]
