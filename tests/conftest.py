"""Session-wide embedded MongoDB (over the wire, no mocks) and per-test clean databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from aipasta.app import create_app
from aipasta.embedded import EmbeddedMongo
from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models
from resolvers.catalog.service import Clock, utc_now
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp, serve


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    embedded = EmbeddedMongo(tmp_path_factory.mktemp("embedded"))
    lease = embedded.acquire()
    yield lease.uri
    embedded.release(lease)


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def clean_db(mongo_uri: str, db_name: str) -> AsyncIterator[str]:
    """A database name no other test uses, dropped afterwards."""
    yield db_name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        await client.drop_database(db_name)
    finally:
        await client.close()


@pytest_asyncio.fixture
async def database(mongo_uri: str, clean_db: str) -> AsyncIterator[Database]:
    db = Database(mongo_uri, db_name=clean_db, document_models=document_models())
    await db.start()
    assert db.available
    yield db
    await db.close()


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test: nothing read from the environment or from .env files."""
    base: dict[str, Any] = {
        "AIPASTA_DATA_DIR": str(tmp_path / "data"),
        "AIPASTA_LOG_LEVEL": "WARNING",
        "AIPASTA_UPSTREAM_BACKOFF_SECONDS": 0,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real keys or URLs must never leak into a test.
    for name in (
        "OPENROUTER_API_KEY",
        "HUGGINGFACE_API_KEY",
        "MONGODB_URI",
        "NEXTAUTH_SECRET",
        "OPENROUTER_BASE_URL",
        "HUGGINGFACE_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def catalog_upstream(upstream: FakeUpstream) -> FakeUpstream:
    upstream.serve_catalogs()
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
                # Sign-in has its own tests; here every request acts as the local admin.
                "AIPASTA_AUTH": "off",
                # Rate limits have their own tests; polling tests must not trip them.
                "AIPASTA_RATE_LIMIT": "100000/minute",
                "AIPASTA_USER_RATE_LIMIT": "100000/minute",
                "AIPASTA_IP_FLOOD_LIMIT": "100000/minute",
            }
            settings.update(overrides)
            app = create_app(make_settings(tmp_path, **settings), clock=clock)
            return await stack.enter_async_context(serve(app))

        yield start
