"""The adapters' tests: the real app under uvicorn, the fake upstream, the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from openai import AsyncOpenAI

from tests.streaming.conftest import sse, store, stream_app  # noqa: F401 - shared fixtures
from tests.support.server import RunningApp

# `sdk(app, api_key=...)`: an AsyncOpenAI client on a running app.
Clients = Any


async def call(
    app: RunningApp,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request: its status, headers and JSON body."""
    async with app.http.request(
        method, f"{app.base_url}{path}", json=json, data=data, headers=headers
    ) as response:
        body = await response.json(content_type=None)
        return response.status, dict(response.headers), body


@pytest_asyncio.fixture
async def sdk() -> AsyncIterator[Any]:
    """Opens AsyncOpenAI clients on a running app (no retries: each call is one request)."""
    opened: list[AsyncOpenAI] = []

    def open_client(app: RunningApp, api_key: str = "unused-with-auth-off") -> AsyncOpenAI:
        client = AsyncOpenAI(base_url=f"{app.base_url}/v1", api_key=api_key, max_retries=0)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()
