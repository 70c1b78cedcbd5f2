"""Cancelling an HTTP operation whose client went away.

A chat answer over HTTP can run for minutes. Nobody reads the answer of a client that
disconnected, so its operation is cancelled at once: a running chat then closes its
upstream request and saves and records what it got, as a stream does when its client
leaves. The server says the client is gone with an `http.disconnect` message on
`receive`, which is only ever read here once the request body has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.types import Receive


@contextlib.asynccontextmanager
async def cancelled_on_disconnect(receive: Receive) -> AsyncIterator[asyncio.Timeout]:
    """Run the body, cancelled as soon as the client disconnects; `TimeoutError` comes
    out then, and the yielded scope's `expired()` tells it from another timeout's."""
    async with asyncio.timeout(None) as gone:
        watcher = asyncio.create_task(_watch(receive, gone), name="http-disconnect")
        try:
            yield gone
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch(receive: Receive, gone: asyncio.Timeout) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # an empty body (GET) still arrives as one `http.request`
    gone.reschedule(asyncio.get_running_loop().time())
