"""The catalog over GraphQL against a fake upstream over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.clocks import FakeClock
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.server import StartApp

CATALOG = """
{
  modelCatalog {
    cached stale fetchedAt expiresAt
    all { id upstreamId provider name multimodal free
          pricing { known promptPerMillion completionPerMillion perRequest perImage } }
    multimodal { id } textOnly { id } free { id } paid { id }
    byProvider { provider models { id } }
    stats { total multimodal textOnly free paid byProvider { provider count } }
    providers { provider status modelCount fetchedAt error }
  }
}
"""


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["id"] for item in items}


async def test_catalog_merges_both_providers_with_prices_and_groups(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    body = await app.graphql(CATALOG)
    assert "errors" not in body
    catalog = body["data"]["modelCatalog"]

    models = {m["id"]: m for m in catalog["all"]}
    assert len(models) == 11
    sonnet = models["openrouter:anthropic/claude-3.5-sonnet"]
    assert sonnet["pricing"] == {
        "known": True,
        "promptPerMillion": 3.0,
        "completionPerMillion": 15.0,
        "perRequest": 0.0,
        "perImage": 0.0048,
    }
    llama = models["huggingface:meta-llama/Llama-3.1-8B-Instruct"]
    assert llama["pricing"]["promptPerMillion"] == 0.02
    assert models["openrouter:openrouter/auto"]["pricing"] == {
        "known": False,
        "promptPerMillion": None,
        "completionPerMillion": None,
        "perRequest": None,
        "perImage": None,
    }

    assert ids(catalog["free"]) == {
        "openrouter:meta-llama/llama-3.1-8b-instruct:free",
        "openrouter:google/gemini-2.0-flash-exp:free",
        "huggingface:HuggingFaceTB/SmolLM3-3B",
    }
    assert ids(catalog["multimodal"]) == {
        "openrouter:anthropic/claude-3.5-sonnet",
        "openrouter:openai/gpt-4o-mini",
        "openrouter:google/gemini-2.0-flash-exp:free",
        "openrouter:openai/gpt-4o-audio-preview",
        "huggingface:Qwen/Qwen2.5-VL-7B-Instruct",
    }
    stats = catalog["stats"]
    assert stats == {
        "total": 11,
        "multimodal": 5,
        "textOnly": 6,
        "free": 3,
        "paid": 6,
        "byProvider": [
            {"provider": "openrouter", "count": 7},
            {"provider": "huggingface", "count": 4},
        ],
    }
    assert [p["provider"] for p in catalog["byProvider"]] == ["openrouter", "huggingface"]
    assert {p["status"] for p in catalog["providers"]} == {"ok"}
    assert catalog["cached"] is True and catalog["stale"] is False


async def test_second_query_within_ttl_does_not_call_upstream(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    await app.graphql("{ modelCatalog { stats { total } } }")
    body = await app.graphql("{ modelCatalog { cached stats { total } } }")
    assert body["data"]["modelCatalog"] == {"cached": True, "stats": {"total": 11}}
    assert catalog_upstream.calls["/openrouter/models"] == 1
    assert catalog_upstream.calls["/hf/models"] == 1


async def test_after_ttl_refreshes_and_failing_upstream_leaves_stale_list(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    clock = FakeClock()
    app = await start_app(clock=clock, AIPASTA_MODELS_TTL_SECONDS=60)
    await app.graphql("{ modelCatalog { cached } }")

    clock.advance(61)
    # Served at once from the expired lists; they are refreshed in the background.
    body = await app.graphql("{ modelCatalog { cached stale } }")
    assert body["data"]["modelCatalog"] == {"cached": True, "stale": True}
    await app.catalog_settled()
    body = await app.graphql("{ modelCatalog { cached stale } }")
    assert body["data"]["modelCatalog"] == {"cached": True, "stale": False}
    assert catalog_upstream.calls["/openrouter/models"] == 2

    clock.advance(61)
    catalog_upstream.set("/openrouter/models", Reply(status=503, body={"error": "down"}))
    await app.graphql("{ modelCatalog { cached } }")
    await app.catalog_settled()
    body = await app.graphql(
        "{ modelCatalog { stale stats { total } providers { provider status error } } }"
    )
    catalog = body["data"]["modelCatalog"]
    assert catalog["stale"] is True
    assert catalog["stats"]["total"] == 11
    statuses = {p["provider"]: p for p in catalog["providers"]}
    assert statuses["openrouter"]["status"] == "stale"
    assert (
        "503" in statuses["openrouter"]["error"]
        or "unavailable" in statuses["openrouter"]["error"].lower()
    )
    assert statuses["huggingface"]["status"] == "ok"
    # the first attempt plus two retries
    assert catalog_upstream.calls["/openrouter/models"] == 5


async def test_provider_down_from_the_start_still_serves_the_other(
    start_app: StartApp, upstream: FakeUpstream
) -> None:
    from tests.support.fake_upstream import fixture_json

    upstream.set("/openrouter/models", Reply(status=500, raw=b"boom"))
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    app = await start_app()
    body = await app.graphql("{ modelCatalog { all { provider } providers { provider status } } }")
    catalog = body["data"]["modelCatalog"]
    assert {m["provider"] for m in catalog["all"]} == {"huggingface"}
    assert {p["provider"]: p["status"] for p in catalog["providers"]} == {
        "openrouter": "error",
        "huggingface": "ok",
    }


async def test_openrouter_gets_the_key_and_attribution_headers(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_APP_URL="https://chat.example", AIPASTA_APP_TITLE="Pasta")
    await app.graphql("{ modelCatalog { cached } }")
    (headers,) = catalog_upstream.headers_seen["/openrouter/models"]
    assert headers["Authorization"] == "Bearer sk-or-v1-test-secret"
    assert headers["HTTP-Referer"] == "https://chat.example"
    assert headers["X-Title"] == "Pasta"
    (hf_headers,) = catalog_upstream.headers_seen["/hf/models"]
    assert hf_headers["Authorization"] == "Bearer hf_test_secret"


MODELS = """
query ($filter: ModelFilter, $first: Int, $after: String) {
  models(filter: $filter, first: $first, after: $after) {
    totalCount nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def test_models_pages_through_everything_once(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await app.graphql(MODELS, {"first": 4, "after": after})
        page = body["data"]["models"]
        assert page["totalCount"] == 11
        seen += [n["id"] for n in page["nodes"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == sorted(seen) and len(set(seen)) == 11


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"provider": "huggingface", "free": True}, {"huggingface:HuggingFaceTB/SmolLM3-3B"}),
        ({"search": "SONNET"}, {"openrouter:anthropic/claude-3.5-sonnet"}),
        ({"inputModality": "audio"}, {"openrouter:openai/gpt-4o-audio-preview"}),
        (
            {"minContextLength": 1_000_000},
            {"openrouter:openrouter/auto", "openrouter:google/gemini-2.0-flash-exp:free"},
        ),
        (
            {"maxPromptPricePerMillion": 0.03, "free": False},
            {
                "openrouter:mistralai/mistral-7b-instruct",
                "huggingface:meta-llama/Llama-3.1-8B-Instruct",
            },
        ),
        (
            {"multimodal": True, "provider": "huggingface"},
            {"huggingface:Qwen/Qwen2.5-VL-7B-Instruct"},
        ),
    ],
)
async def test_models_filters(
    start_app: StartApp,
    catalog_upstream: FakeUpstream,
    filter_: dict[str, Any],
    expected: set[str],
) -> None:
    app = await start_app()
    body = await app.graphql(MODELS, {"filter": filter_, "first": 200})
    assert {n["id"] for n in body["data"]["models"]["nodes"]} == expected
    assert body["data"]["models"]["totalCount"] == len(expected)


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 201}, "first"),
        ({"first": -1}, "first"),
        ({"after": "not-a-cursor"}, "after"),
        ({"filter": {"search": "x" * 201}}, "filter.search"),
        ({"filter": {"maxPromptPricePerMillion": -1}}, "filter.maxPromptPricePerMillion"),
    ],
)
async def test_models_rejects_bad_input_with_a_code(
    start_app: StartApp, catalog_upstream: FakeUpstream, variables: dict[str, Any], field: str
) -> None:
    app = await start_app()
    body = await app.graphql(MODELS, variables)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["details"]["field"] == field


async def test_model_by_full_or_bare_id(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    query = "query ($id: ID!) { model(id: $id) { id provider contextLength } }"
    full = await app.graphql(query, {"id": "huggingface:meta-llama/Llama-3.1-8B-Instruct"})
    bare = await app.graphql(query, {"id": "meta-llama/Llama-3.1-8B-Instruct"})
    missing = await app.graphql(query, {"id": "nobody/nothing"})
    assert full["data"]["model"] == bare["data"]["model"]
    assert full["data"]["model"]["contextLength"] == 16384
    assert missing["data"]["model"] is None


async def test_refresh_models_asks_upstream_again(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    await app.graphql("{ modelCatalog { cached } }")
    body = await app.graphql("mutation { refreshModels { cached stats { total } } }")
    assert body["data"]["refreshModels"] == {"cached": False, "stats": {"total": 11}}
    assert catalog_upstream.calls["/openrouter/models"] == 2


async def test_hundred_simultaneous_cold_queries_make_one_upstream_call_each(
    start_app: StartApp, upstream: FakeUpstream
) -> None:
    import asyncio

    from tests.support.fake_upstream import fixture_json

    gate = asyncio.Event()
    upstream.set(
        "/openrouter/models", Reply(body=fixture_json("openrouter_models.json"), gate=gate)
    )
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json"), gate=gate))
    app = await start_app()
    queries = [
        asyncio.create_task(app.graphql("{ modelCatalog { stats { total } } }")) for _ in range(100)
    ]
    async with asyncio.timeout(10):
        while upstream.calls["/openrouter/models"] + upstream.calls["/hf/models"] < 2:
            await asyncio.sleep(0.01)  # until the fetches reach the fake (bounded)
    gate.set()
    answers = await asyncio.gather(*queries)
    assert all(a["data"]["modelCatalog"]["stats"]["total"] == 11 for a in answers)
    assert upstream.calls["/openrouter/models"] == 1
    assert upstream.calls["/hf/models"] == 1
