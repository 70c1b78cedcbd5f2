"""The real schema with scripted chat providers, a fixed catalog and the embedded MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest_asyncio
from starlette.requests import Request
from strawberry.types import ExecutionResult

from documents.database import Database
from providers.fake import FakeProvider, ScriptedSource
from providers.model import ModelInfo, Pricing
from resolvers.catalog.service import Catalog
from resolvers.catalog.store import CatalogStore
from resolvers.context import Context, Services
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import Identity
from resolvers.identity.key_store import ApiKeyStore
from resolvers.usage.recorder import UsageRecorder
from schema.build import build_schema
from tests.conftest import make_settings
from tests.support.clocks import Sleeps

SCHEMA = build_schema()

PRICED = ModelInfo(
    provider="openrouter",
    upstream_id="mistralai/mistral-7b-instruct",
    name="Mistral 7B",
    context_length=32768,
    pricing=Pricing(Decimal("0.028"), Decimal("0.054"), Decimal("0"), Decimal("0")),
)
VISION = ModelInfo(
    provider="openrouter",
    upstream_id="openai/gpt-4o-mini",
    name="GPT-4o mini",
    context_length=128000,
    input_modalities=("text", "image", "file"),
    pricing=Pricing(Decimal("0.15"), Decimal("0.6")),
)
UNPRICED = ModelInfo(provider="openrouter", upstream_id="openrouter/auto", name="Auto")
HF = ModelInfo(
    provider="huggingface",
    upstream_id="meta-llama/Llama-3.1-8B-Instruct",
    name="Llama",
    pricing=Pricing(Decimal("0.02"), Decimal("0.05")),
)


class ChatHarness:
    def __init__(
        self, services: Services, openrouter: FakeProvider, hf: FakeProvider, sleeps: Sleeps
    ) -> None:
        self.services = services
        self.openrouter = openrouter
        self.hf = hf
        self.sleeps = sleeps  # the retries' waits, recorded instead of waited

    def _context(self, user: str | None) -> Context:
        request = Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)})
        return Context(
            services=self.services,
            request=request,
            response=None,
            request_id="req-chat",
            identity=None if user is None else Identity(user_id=user),
        )

    async def run(
        self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = "alice"
    ) -> ExecutionResult:
        return await SCHEMA.execute(
            query, variable_values=variables, context_value=self._context(user)
        )

    async def subscribe(
        self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = "alice"
    ) -> list[ExecutionResult]:
        """Every result a subscription sends, to its end."""
        context = self._context(user)
        context.over_sse = True  # as the SSE transport marks it
        results = await SCHEMA.subscribe(query, variable_values=variables, context_value=context)
        if isinstance(results, ExecutionResult):  # refused before it started
            return [results]
        return [result async for result in results]

    async def usage_records(self) -> list[dict[str, Any]]:
        await self.services.usage.flush()
        assert self.services.database is not None
        return await self.services.database.db["usage_records"].find({}).to_list()


@pytest_asyncio.fixture
async def harness(tmp_path: Path, database: Database) -> AsyncIterator[ChatHarness]:
    async with chat_harness(tmp_path, database) as running:
        yield running


@asynccontextmanager
async def chat_harness(
    tmp_path: Path,
    database: Database,
    openrouter_models: Sequence[ModelInfo] = (PRICED, VISION, UNPRICED),
    hf_models: Sequence[ModelInfo] = (HF,),
) -> AsyncIterator[ChatHarness]:
    """The harness over a catalog of the given models (the fixture's by default)."""
    settings = make_settings(
        tmp_path,
        AIPASTA_CHAT_RETRY_BACKOFF=0,
        AIPASTA_STREAM_COALESCE_MS=0,
    )
    openrouter, hf = FakeProvider("openrouter"), FakeProvider("huggingface")
    catalog = Catalog(
        [
            ScriptedSource("openrouter", list(openrouter_models)),
            ScriptedSource("huggingface", list(hf_models)),
        ],
        store=CatalogStore(None),
        ttl_seconds=1800,
        retry_seconds=60,
    )
    catalog.start()  # the lists are fetched in the background, as in the app
    keys = ApiKeyStore(database)
    usage = UsageRecorder(database, flush_interval=3600)
    sleeps = Sleeps()
    services = Services(
        settings=settings,
        http=None,  # type: ignore[arg-type]
        catalog=catalog,
        database=database,
        keys=keys,
        authenticator=Authenticator(settings, keys),
        version="test",
        chat={"openrouter": openrouter, "huggingface": hf},
        usage=usage,
        retry_sleep=sleeps,
    )
    try:
        yield ChatHarness(services, openrouter, hf, sleeps)
    finally:
        await services.background.drain(within=5)
        await usage.close()
        await catalog.close()
