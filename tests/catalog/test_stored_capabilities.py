"""A catalog loaded back from MongoDB keeps what each model supports and its extra prices:
without them a restarted gateway would send tools to a model that refuses them and price
cached and reasoning tokens at the plain rates."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from documents.database import Database
from providers.fake import model
from providers.model import Pricing
from resolvers.catalog.store import CatalogStore


async def test_capabilities_and_cache_and_reasoning_prices_survive_the_database(
    database: Database,
) -> None:
    thinker = replace(
        model("openrouter", "lab/thinker"),
        pricing=Pricing(
            prompt_per_million=Decimal("3"),
            completion_per_million=Decimal("15"),
            cache_read_per_million=Decimal("0.3"),
            cache_write_per_million=Decimal("3.75"),
            reasoning_per_million=Decimal("12.5"),
        ),
        supports_tools=True,
        supports_reasoning=True,
        supports_structured_output=False,
        max_completion_tokens=64000,
    )
    unknown = model("openrouter", "lab/plain")
    now = datetime.now(UTC)
    store = CatalogStore(database)

    await store.save(
        "openrouter", [thinker, unknown], fetched_at=now, expires_at=now + timedelta(minutes=30)
    )
    loaded = await store.load("openrouter")

    assert loaded is not None
    assert loaded.models == (thinker, unknown)
    # A model whose provider says nothing stays unknown (tried), not "unsupported".
    assert loaded.models[1].supports_tools is None


async def test_a_list_cached_before_the_capability_fields_still_loads(database: Database) -> None:
    now = datetime.now(UTC)
    await database.db["model_catalog"].insert_one(
        {
            "provider": "openrouter",
            "models": [
                {
                    "upstreamId": "old/model",
                    "name": "Old",
                    "inputModalities": ["text"],
                    "outputModalities": ["text"],
                    "promptPerMillion": "1",
                    "completionPerMillion": "2",
                }
            ],
            "fetchedAt": now,
            "expiresAt": now + timedelta(minutes=30),
        }
    )

    loaded = await CatalogStore(database).load("openrouter")

    assert loaded is not None
    (old,) = loaded.models
    assert old.supports_tools is None and old.max_completion_tokens is None
    assert old.pricing.cache_read_per_million is None
    assert old.pricing.prompt_per_million == Decimal("1")
