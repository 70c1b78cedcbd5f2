"""HTTP helpers for the edge's tests, and a server that reports the real socket peer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from multidict import CIMultiDictProxy

from tests.streaming.conftest import sse, store, stream_app, ws_client  # noqa: F401 - shared fixtures
from tests.support.server import RunningApp

TYPENAME = "{ __typename }"


@pytest.fixture(autouse=True)
def _uvicorn_keeps_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    # `aipasta serve` runs uvicorn with proxy_headers=False: X-Forwarded-For is the
    # gateway's own business (AIPASTA_TRUSTED_PROXIES). The test server keeps uvicorn's
    # default, which would rewrite the peer of loopback requests before the app sees it.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


async def post(
    app: RunningApp,
    query: str = TYPENAME,
    *,
    headers: dict[str, str] | None = None,
    variables: dict[str, Any] | None = None,
) -> Answer:
    async with app.http.post(
        f"{app.base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
    ) as response:
        return Answer(response.status, response.headers, await response.json())


async def get(app: RunningApp, path: str, *, headers: dict[str, str] | None = None) -> Answer:
    async with app.http.get(f"{app.base_url}{path}", headers=headers) as response:
        if response.content_type == "application/json":
            return Answer(response.status, response.headers, await response.json())
        return Answer(response.status, response.headers, await response.text())


def rate_limited_body(message: str, retry_after: int, limit: int) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": message,
                "extensions": {
                    "code": "RATE_LIMITED",
                    "retryAfter": retry_after,
                    "limit": limit,
                    "remaining": 0,
                },
            }
        ],
    }


async def raw_exchange(app: RunningApp, request: bytes, *, within: float = 5.0) -> bytes:
    """Write `request` as is on a new connection; everything the server answers before it
    closes (or `within` runs out: the answer must not depend on the client finishing)."""
    url = urlsplit(app.base_url)
    assert url.hostname is not None and url.port is not None
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), within)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await asyncio.wait_for(reader.readexactly(length), within)
        return head + body
    finally:
        writer.close()
