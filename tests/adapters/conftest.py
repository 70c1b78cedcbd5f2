"""The adapters' tests: the real app under uvicorn, the fake upstream, the real database."""

from __future__ import annotations

from typing import Any

from tests.streaming.conftest import sse, store, stream_app  # noqa: F401 - shared fixtures
from tests.support.server import RunningApp


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
