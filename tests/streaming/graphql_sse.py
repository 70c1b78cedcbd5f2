"""A minimal GraphQL-over-SSE client (graphql-sse, distinct connections mode) over aiohttp.

`sse_operation(app, query, variables)` POSTs one operation with `Accept:
text/event-stream` and yields a `SSEOperation`: its `response` (status, headers) and,
when the answer is an event stream, its events read into an `Outcome` the same way
`GraphQLWebSocket` reads a websocket's messages.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.streaming.conftest import RECEIVE_TIMEOUT, Outcome
from tests.support.server import RunningApp

EVENT_STREAM = "text/event-stream"


@dataclass
class SSEOperation:
    response: aiohttp.ClientResponse
    # Comments (`: ping`) seen so far.
    comments: int = 0

    @property
    def streams(self) -> bool:
        return self.response.content_type == EVENT_STREAM

    async def message(self) -> tuple[str, Any] | None:
        """The next event as (event name, decoded data); None at the end of the body."""
        name: str | None = None
        data: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), RECEIVE_TIMEOUT)
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if name is None and not data:
                    continue
                text = "\n".join(data)
                return name or "message", json.loads(text) if text else None
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    async def event(self, outcome: Outcome) -> dict[str, Any] | None:
        """Read one event into `outcome`; the field value it carried, if any."""
        received = await self.message()
        assert received is not None, "the stream ended without `complete`"
        name, payload = received
        if name == "complete":
            outcome.completed = True
            return None
        assert name == "next", received
        return outcome.take(payload)

    async def finish(self, outcome: Outcome | None = None) -> Outcome:
        """Read events until `complete`; nothing may follow it."""
        outcome = outcome or Outcome()
        while not outcome.completed:
            await self.event(outcome)
        assert await self.message() is None
        return outcome

    async def results(self) -> list[dict[str, Any]]:
        """Every `next` payload, whole (for queries and mutations), up to `complete`."""
        payloads: list[dict[str, Any]] = []
        while (received := await self.message()) is not None:
            name, payload = received
            if name == "complete":
                assert await self.message() is None
                return payloads
            assert name == "next", received
            payloads.append(payload)
        raise AssertionError("the stream ended without `complete`")


@asynccontextmanager
async def sse_operation(
    app: RunningApp,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SSEOperation]:
    async with app.http.post(
        f"{app.base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Accept": EVENT_STREAM, **(headers or {})},
    ) as response:
        yield SSEOperation(response)


async def sse_run(
    app: RunningApp,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> Outcome:
    async with sse_operation(app, query, variables, headers=headers) as operation:
        assert operation.response.status == 200, await operation.response.text()
        assert operation.streams
        return await operation.finish()
