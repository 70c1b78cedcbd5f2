"""Run the real app under uvicorn on a loopback port, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import uvicorn
from starlette.applications import Starlette


class RunningApp:
    def __init__(
        self, base_url: str, http: aiohttp.ClientSession, state: Mapping[str, Any] | None = None
    ) -> None:
        self.base_url = base_url
        self.http = http
        # What the lifespan yielded (its `services`), for a test to wait on.
        self.state: Mapping[str, Any] = state or {}

        self.catalog_reads = 0

    async def catalog_settled(self) -> None:
        """Until the catalog's background refreshes have nothing left to do."""
        await self.state["services"].catalog.settled()

    def count_catalog_reads(self) -> None:
        """Count in `catalog_reads` the resolvers' catalog reads from now on (the catalog
        is fetched in the background, so upstream calls no longer tell a query ran)."""
        catalog = self.state["services"].catalog
        view = catalog.view

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.catalog_reads += 1
            return await view(*args, **kwargs)

        catalog.view = counted

    async def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        async with self.http.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
        ) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base_url}{path}") as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


StartApp = Callable[..., Awaitable[RunningApp]]


async def slow_reader_connection(
    app: RunningApp,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to `app` whose unread bytes soon stop the server's writes: a client
    that stops reading, as a stalled browser tab or a hostile client would."""
    url = urlsplit(app.base_url)
    assert url.hostname is not None and url.port is not None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connecting: a small window, and segments the size of a real network's
    # (loopback's 64 KiB segments make the server's kernel buffer megabytes at once).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (url.hostname, url.port))
    # A small limit: asyncio stops reading the socket once 8 KiB wait unread.
    return await asyncio.open_connection(sock=sock, limit=4096)


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[RunningApp]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As the CLI runs it: X-Forwarded-For is ours to judge (trusted proxies), not uvicorn's.
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", ws="websockets-sansio", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http:
            yield RunningApp(f"http://127.0.0.1:{port}", http, server.lifespan.state)
    finally:
        server.should_exit = True
        await task
        sock.close()
