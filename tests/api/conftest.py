"""The real app under uvicorn, wired to the embedded MongoDB and a fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from aipasta.app import create_app
from resolvers.catalog import Clock, utc_now
from tests.conftest import make_settings
from tests.support.server import RunningApp, serve
from tests.support.upstream import FakeUpstream, Reply, fixture_json

StartApp = Callable[..., Awaitable[RunningApp]]


@pytest.fixture
def catalog_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.set("/openrouter/models", Reply(body=fixture_json("openrouter_models.json")))
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    return upstream


@pytest_asyncio.fixture
async def start_app(
    tmp_path: Path, mongo_uri: str, clean_db: str, upstream: FakeUpstream
) -> AsyncIterator[StartApp]:
    async with AsyncExitStack() as stack:

        async def start(clock: Clock = utc_now, **overrides: Any) -> RunningApp:
            settings: dict[str, Any] = {
                "MONGODB_URI": mongo_uri,
                "AIPASTA_DB_NAME": clean_db,
                "OPENROUTER_BASE_URL": upstream.url("openrouter"),
                "HUGGINGFACE_BASE_URL": upstream.url("hf"),
                "OPENROUTER_API_KEY": "sk-or-v1-test-secret",
                "HUGGINGFACE_API_KEY": "hf_test_secret",
            }
            settings.update(overrides)
            app = create_app(make_settings(tmp_path, **settings), clock=clock)
            return await stack.enter_async_context(serve(app))

        yield start
