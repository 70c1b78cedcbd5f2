"""Fixtures for the provider tests: a client session, mocked and real loopback upstreams.

A real aiohttp server is used wherever delivery matters (split chunks, stalls, resets,
disconnects), which aioresponses cannot express.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StartUpstream = Callable[[Handler], Awaitable[str]]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def start_upstream() -> AsyncIterator[StartUpstream]:
    """Start a server on 127.0.0.1 (free port) answering POST /v1/chat/completions
    with `handler`; returns the base URL to give the client."""
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        server = TestServer(app, host="127.0.0.1", port=0)
        # TestServer cancels handlers whose client went away; the short shutdown
        # timeout only matters if a test leaves a handler blocked.
        await server.start_server(shutdown_timeout=1.0)
        servers.append(server)
        return str(server.make_url("/v1"))

    yield start
    for server in servers:
        await server.close()


_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse).parameters


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the `stream_writer` argument that
    aiohttp 3.14 made required (pnuckowski/aioresponses#289); a stand-in reporting an
    empty upload is enough for a response that was never sent. Older aiohttp versions
    do not take the argument, so it is only added when needed."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _CompatAioresponses(aioresponses):
    def add(self, url: Any, method: str = "GET", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(url, method, *args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses, patched for aiohttp 3.14; unmatched requests fail."""
    with _CompatAioresponses() as mock:
        yield mock
