"""What each model can do and what its cached and reasoning tokens cost: shown on
`Model` and filterable in `models`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from documents.database import Database
from providers.model import ModelInfo, Pricing
from tests.chat.conftest import ChatHarness, chat_harness

THINKER = ModelInfo(
    provider="openrouter",
    upstream_id="acme/thinker",
    name="Thinker",
    pricing=Pricing(
        Decimal("3"),
        Decimal("15"),
        cache_read_per_million=Decimal("0.3"),
        cache_write_per_million=Decimal("3.75"),
        reasoning_per_million=Decimal("15"),
    ),
    supports_tools=True,
    supports_reasoning=True,
    supports_structured_output=True,
    max_completion_tokens=8192,
)
PAINTER = ModelInfo(
    provider="openrouter",
    upstream_id="acme/painter",
    name="Painter",
    output_modalities=("image", "text"),
    pricing=Pricing(Decimal("0.3"), Decimal("2.5")),
    supports_tools=False,
    supports_reasoning=False,
    supports_structured_output=False,
)
# Its provider says nothing about what it supports.
MYSTERY = ModelInfo(provider="huggingface", upstream_id="acme/mystery", name="Mystery")

MODELS = """
query ($filter: ModelFilter) {
  models(filter: $filter) {
    nodes {
      id supportsTools supportsReasoning supportsStructuredOutput maxCompletionTokens
      outputModalities
      pricing { cacheReadPerMillion cacheWritePerMillion reasoningPerMillion }
    }
  }
}
"""


@pytest_asyncio.fixture
async def harness(tmp_path: Path, database: Database) -> AsyncIterator[ChatHarness]:
    async with chat_harness(tmp_path, database, (THINKER, PAINTER), (MYSTERY,)) as running:
        yield running


async def ids(harness: ChatHarness, **filter: Any) -> list[str]:
    result = await harness.run(MODELS, {"filter": filter})
    assert result.errors is None, result.errors
    return [node["id"] for node in result.data["models"]["nodes"]]  # type: ignore[index]


async def test_a_model_shows_what_it_supports_and_its_cache_and_reasoning_prices(
    harness: ChatHarness,
) -> None:
    result = await harness.run(MODELS)
    assert result.errors is None
    nodes = {node["id"]: node for node in result.data["models"]["nodes"]}  # type: ignore[index]
    assert nodes[THINKER.id] == {
        "id": THINKER.id,
        "supportsTools": True,
        "supportsReasoning": True,
        "supportsStructuredOutput": True,
        "maxCompletionTokens": 8192,
        "outputModalities": ["text"],
        "pricing": {
            "cacheReadPerMillion": 0.3,
            "cacheWritePerMillion": 3.75,
            "reasoningPerMillion": 15.0,
        },
    }
    assert nodes[PAINTER.id]["supportsTools"] is False
    unknown = nodes[MYSTERY.id]
    assert (unknown["supportsTools"], unknown["supportsReasoning"]) == (None, None)
    assert unknown["supportsStructuredOutput"] is None
    assert unknown["pricing"] == {
        "cacheReadPerMillion": None,
        "cacheWritePerMillion": None,
        "reasoningPerMillion": None,
    }


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"supportsTools": True}, [THINKER.id]),
        # false is everything else, a model whose support is unknown included
        ({"supportsTools": False}, [MYSTERY.id, PAINTER.id]),
        ({"supportsReasoning": True}, [THINKER.id]),
        ({"supportsReasoning": False, "provider": "openrouter"}, [PAINTER.id]),
        ({"outputModality": " Image "}, [PAINTER.id]),
        ({"outputModality": "text", "supportsTools": True}, [THINKER.id]),
        ({"outputModality": "audio"}, []),
    ],
    ids=["tools", "no-tools", "reasoning", "no-reasoning-openrouter", "image-out", "both", "none"],
)
async def test_filters_on_support_and_output_modality(
    harness: ChatHarness, filter: dict[str, Any], expected: list[str]
) -> None:
    assert await ids(harness, **filter) == expected


async def test_an_overlong_output_modality_is_refused(harness: ChatHarness) -> None:
    result = await harness.run(MODELS, {"filter": {"outputModality": "x" * 33}})
    assert result.errors
    assert result.errors[0].extensions["details"] == {"field": "filter.outputModality"}  # type: ignore[index]
