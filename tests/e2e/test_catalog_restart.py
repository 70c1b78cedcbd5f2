"""What the catalog learnt from the upstream's listing (capabilities, cache and reasoning
prices) still holds after a restart while the listing is down: the gateway then works
from the copy in MongoDB, and refuses and prices exactly as before."""

from __future__ import annotations

from decimal import Decimal

from tests.e2e.conftest import (
    JSON_ONLY,
    THINKER,
    THINKER_UPSTREAM,
    Gateway,
    chunk,
    data_of,
    usage_chunk,
)
from tests.support.fake_upstream import FakeUpstream, Stream, http_error

MODELS = """
{ models(filter: {provider: "openrouter", supportsReasoning: true}) {
    nodes { id supportsTools supportsReasoning supportsStructuredOutput maxCompletionTokens
            pricing { promptPerMillion completionPerMillion cacheReadPerMillion
                      cacheWritePerMillion reasoningPerMillion } } } }
"""
CHAT = """
mutation ($input: ChatInput!) { chat(input: $input) { cost { totalCost } } }
"""
THINKER_NODE = {
    "id": THINKER,
    "supportsTools": True,
    "supportsReasoning": True,
    "supportsStructuredOutput": True,
    "maxCompletionTokens": 64000,
    "pricing": {
        "promptPerMillion": 2.0,
        "completionPerMillion": 8.0,
        "cacheReadPerMillion": 0.5,
        "cacheWritePerMillion": 2.5,
        "reasoningPerMillion": 10.0,
    },
}


def priced_answer() -> Stream:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 20},
        "completion_tokens_details": {"reasoning_tokens": 4},
    }
    return Stream(
        (
            chunk({"role": "assistant", "content": "Hi"}),
            chunk({}, finish_reason="stop"),
            usage_chunk(usage),
        )
    )


def ask(model: str, **options: object) -> dict[str, object]:
    return {
        "input": {
            "model": model,
            "messages": [{"role": "USER", "content": "Hi"}],
            "options": options,
        }
    }


async def test_capabilities_and_prices_survive_a_restart_without_the_listing(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    first = await gateway()
    before = data_of(await first.graphql(MODELS))["models"]["nodes"]
    backup = {**THINKER_NODE, "id": "openrouter:acme/backup"}
    backup["pricing"] = {
        "promptPerMillion": 1.0,
        "completionPerMillion": 4.0,
        "cacheReadPerMillion": None,
        "cacheWritePerMillion": None,
        "reasoningPerMillion": None,
    }
    assert before == [backup, THINKER_NODE] or before == [THINKER_NODE, backup]
    await first.catalog_settled()

    fake.set("/openrouter/models", http_error(503, "listing down"))
    second = await gateway()

    assert data_of(await second.graphql(MODELS))["models"]["nodes"] == before
    schema = {"type": "JSON_SCHEMA", "name": "x", "schema": {"type": "object"}}
    refused = await second.graphql(CHAT, ask(JSON_ONLY, responseFormat=schema))
    assert refused["errors"][0]["extensions"]["details"] == {"field": "options.responseFormat"}

    fake.script(THINKER_UPSTREAM, priced_answer())
    cost = data_of(await second.graphql(CHAT, ask(THINKER, reasoning={"effort": "LOW"})))
    # 40 plain prompt tokens at 2, 40 cached at 0.5, 20 written at 2.5;
    # 6 plain completion tokens at 8, 4 reasoning at 10 (USD per million).
    expected = (40 * 2 + 40 * Decimal("0.5") + 20 * Decimal("2.5") + 6 * 8 + 4 * 10) / 10**6
    assert cost["chat"]["cost"]["totalCost"] == float(expected)
    # The second process took the first one's list from MongoDB (it is fresh and shared).
    assert fake.calls["/openrouter/models"] == 1
