"""What the catalog knows about a model besides its name: tools, reasoning and structured
output support, the completion limit, cache and reasoning prices, image-output models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from providers.fetch import RetryPolicy
from providers.huggingface import parse_huggingface_models
from providers.listing import ModelListing
from providers.model import ModelInfo, Pricing
from providers.openai_models import parse_openai_models
from providers.openrouter import LISTING_QUERY, parse_openrouter_models
from tests.support.fake_upstream import fixture_json


def openrouter_entry(model_id: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "name": model_id,
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "pricing": {"prompt": "0.000003", "completion": "0.000015"},
    }
    entry.update(fields)
    return entry


def one(entry: dict[str, Any]) -> ModelInfo:
    (model,) = parse_openrouter_models({"data": [entry]})
    return model


# --- OpenRouter ------------------------------------------------------------------------


def test_openrouter_cache_and_reasoning_prices_per_million() -> None:
    model = one(
        openrouter_entry(
            "anthropic/claude-sonnet-4.5",
            pricing={
                "prompt": "0.000003",
                "completion": "0.000015",
                "input_cache_read": "0.0000003",
                "input_cache_write": "0.00000375",
                "internal_reasoning": "0.00001",
                "request": "0",
                "image": "0",
            },
        )
    )
    assert model.pricing == Pricing(
        prompt_per_million=Decimal("3"),
        completion_per_million=Decimal("15"),
        per_request=Decimal("0"),
        per_image=Decimal("0"),
        cache_read_per_million=Decimal("0.3"),
        cache_write_per_million=Decimal("3.75"),
        reasoning_per_million=Decimal("10"),
    )


def test_openrouter_zero_extra_prices_on_a_paid_model_are_no_price() -> None:
    # OpenRouter lists "0" where a model bills reasoning as completion tokens.
    model = one(
        openrouter_entry(
            "deepseek/deepseek-r1",
            pricing={
                "prompt": "0.0000004",
                "completion": "0.000002",
                "internal_reasoning": "0",
                "input_cache_read": "garbage",
            },
        )
    )
    assert model.pricing.reasoning_per_million is None
    assert model.pricing.cache_read_per_million is None
    assert model.pricing.cache_write_per_million is None


def test_openrouter_free_model_keeps_its_zero_prices() -> None:
    model = one(
        openrouter_entry(
            "x/free",
            pricing={"prompt": "0", "completion": "0", "internal_reasoning": "0"},
        )
    )
    assert model.pricing.reasoning_per_million == Decimal(0)


def test_openrouter_capabilities_from_supported_parameters() -> None:
    agent = one(
        openrouter_entry(
            "openai/o4-mini",
            supported_parameters=[
                "tools",
                "tool_choice",
                "reasoning",
                "include_reasoning",
                "response_format",
                "structured_outputs",
            ],
            top_provider={"context_length": 200000, "max_completion_tokens": 100000},
        )
    )
    assert (agent.supports_tools, agent.supports_reasoning, agent.supports_structured_output) == (
        True,
        True,
        True,
    )
    assert agent.max_completion_tokens == 100000

    plain = one(
        openrouter_entry(
            "mistralai/mistral-7b-instruct",
            # json_object only: no JSON schema.
            supported_parameters=["max_tokens", "temperature", "response_format"],
            top_provider={"max_completion_tokens": None},
        )
    )
    assert (plain.supports_tools, plain.supports_reasoning, plain.supports_structured_output) == (
        False,
        False,
        False,
    )
    assert plain.max_completion_tokens is None


@pytest.mark.parametrize("listed", [None, "tools", {"tools": True}, 7])
def test_openrouter_without_a_parameter_list_supports_are_unknown(listed: object) -> None:
    entry = openrouter_entry("x/unknown", top_provider={"max_completion_tokens": "big"})
    if listed is not None:
        entry["supported_parameters"] = listed
    model = one(entry)
    assert (model.supports_tools, model.supports_reasoning, model.supports_structured_output) == (
        None,
        None,
        None,
    )
    assert model.max_completion_tokens is None


def test_openrouter_image_output_model_is_parsed() -> None:
    model = one(
        openrouter_entry(
            "google/gemini-2.5-flash-image",
            architecture={
                "input_modalities": ["image", "text"],
                "output_modalities": ["image", "text"],
            },
            pricing={"prompt": "0.0000003", "completion": "0.0000025", "image": "0.001238"},
        )
    )
    assert model.output_modalities == ("image", "text")
    assert not model.text_only


def test_the_fixture_listing_still_parses_with_unknown_capabilities_where_unlisted() -> None:
    models = {
        m.upstream_id: m for m in parse_openrouter_models(fixture_json("openrouter_models.json"))
    }
    for model in models.values():
        assert model.supports_tools in (True, False, None)
        if model.supported_parameters:
            assert model.supports_tools == ("tools" in model.supported_parameters)


# --- Hugging Face -----------------------------------------------------------------------


def hf_entry(*providers: dict[str, Any]) -> dict[str, Any]:
    return {"data": [{"id": "org/model", "providers": list(providers)}]}


def live(**fields: Any) -> dict[str, Any]:
    return {"provider": "p", "status": "live", "pricing": {"input": 1, "output": 2}, **fields}


def test_huggingface_fixture_support_from_live_providers() -> None:
    models = {
        m.upstream_id: m for m in parse_huggingface_models(fixture_json("huggingface_models.json"))
    }
    llama = models["meta-llama/Llama-3.1-8B-Instruct"]
    # One live provider with tools is enough; so is one with structured output.
    assert llama.supports_tools is True
    assert llama.supports_structured_output is True
    assert llama.supports_reasoning is None


@pytest.mark.parametrize(
    ("providers", "expected"),
    [
        ((live(supports_tools=True), live(supports_tools=False)), True),
        ((live(supports_tools=False), live(supports_tools=False)), False),
        ((live(), live()), None),
        ((live(supports_tools=False), live()), None),
        ((live(supports_tools="yes"),), None),
        # A provider that is not live does not count.
        (
            (
                live(supports_tools=False),
                {"provider": "q", "status": "error", "supports_tools": True},
            ),
            False,
        ),
    ],
)
def test_huggingface_supports_tools_from_live_providers(
    providers: tuple[dict[str, Any], ...], expected: bool | None
) -> None:
    (model,) = parse_huggingface_models(hf_entry(*providers))
    assert model.supports_tools is expected


def test_huggingface_structured_output_from_live_providers() -> None:
    (model,) = parse_huggingface_models(
        hf_entry(live(supports_structured_output=False), live(supports_structured_output=False))
    )
    assert model.supports_structured_output is False


# --- generic OpenAI-compatible servers -----------------------------------------------


def test_a_generic_listing_says_nothing_about_support() -> None:
    (model,) = parse_openai_models("ollama", {"data": [{"id": "llama3.2"}]}, Pricing())
    assert (model.supports_tools, model.supports_reasoning, model.supports_structured_output) == (
        None,
        None,
        None,
    )
    assert model.max_completion_tokens is None


# --- the listing asks OpenRouter for every output modality -------------------------


@pytest.fixture
async def modality_server() -> AsyncIterator[str]:
    """Answers `GET /api/v1/models` the way OpenRouter does: text-output models only
    unless `output_modalities=all`."""

    async def models(request: web.Request) -> web.Response:
        data = [openrouter_entry("openai/gpt-4o")]
        if request.query.get("output_modalities") == "all":
            data.append(
                openrouter_entry(
                    "google/gemini-2.5-flash-image",
                    architecture={"input_modalities": ["text"], "output_modalities": ["image"]},
                )
            )
        return web.json_response({"data": data})

    app = web.Application()
    app.router.add_get("/api/v1/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/api/v1"
    await runner.cleanup()


async def test_openrouter_listing_includes_image_output_models(modality_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        listing = ModelListing(
            session,
            name="openrouter",
            base_url=modality_server,
            headers={"Accept": "application/json"},
            policy=RetryPolicy(retries=0),
            parse=partial(parse_openrouter_models),
            configured=True,
            query=LISTING_QUERY,
        )
        models = {m.upstream_id: m for m in await listing.list_models()}
    assert set(models) == {"openai/gpt-4o", "google/gemini-2.5-flash-image"}
    assert models["google/gemini-2.5-flash-image"].output_modalities == ("image",)
