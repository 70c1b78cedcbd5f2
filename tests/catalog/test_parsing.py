"""Provider listings normalised into one model shape with exact prices."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.errors import ProviderProtocolError
from providers.huggingface import parse_huggingface_models
from providers.model import ModelInfo
from providers.openrouter import parse_openrouter_models
from tests.support.fake_upstream import fixture_json


def by_id(models: list[ModelInfo]) -> dict[str, ModelInfo]:
    return {m.id: m for m in models}


def test_openrouter_prices_become_exact_per_million_amounts() -> None:
    models = by_id(parse_openrouter_models(fixture_json("openrouter_models.json")))
    sonnet = models["openrouter:anthropic/claude-3.5-sonnet"]
    assert sonnet.pricing.prompt_per_million == Decimal("3")
    assert sonnet.pricing.completion_per_million == Decimal("15")
    assert sonnet.pricing.per_image == Decimal("0.0048")
    mistral = models["openrouter:mistralai/mistral-7b-instruct"]
    # Binary floats would give 0.027999999999999997 here.
    assert mistral.pricing.prompt_per_million == Decimal("0.028")
    assert mistral.pricing.completion_per_million == Decimal("0.054")


def test_openrouter_categories() -> None:
    models = by_id(parse_openrouter_models(fixture_json("openrouter_models.json")))
    assert models["openrouter:anthropic/claude-3.5-sonnet"].multimodal
    assert not models["openrouter:anthropic/claude-3.5-sonnet"].text_only
    assert models["openrouter:mistralai/mistral-7b-instruct"].text_only
    assert models["openrouter:meta-llama/llama-3.1-8b-instruct:free"].free
    assert models["openrouter:google/gemini-2.0-flash-exp:free"].free
    assert not models["openrouter:openai/gpt-4o-mini"].free
    assert models["openrouter:openai/gpt-4o-mini"].paid
    audio = models["openrouter:openai/gpt-4o-audio-preview"]
    assert audio.multimodal and not audio.text_only


def test_openrouter_router_models_have_unknown_price_not_free() -> None:
    models = by_id(parse_openrouter_models(fixture_json("openrouter_models.json")))
    auto = models["openrouter:openrouter/auto"]
    assert not auto.pricing.known
    assert auto.pricing.prompt_per_million is None
    assert not auto.free and not auto.paid


def test_openrouter_free_suffix_alone_makes_a_model_free() -> None:
    payload = {
        "data": [
            {"id": "x/y:free", "name": "Y", "pricing": {"prompt": "0.000001", "completion": "0"}}
        ]
    }
    (model,) = parse_openrouter_models(payload)
    assert model.free


def test_openrouter_skips_malformed_entries_and_tolerates_wrong_types() -> None:
    payload = fixture_json("openrouter_models.json")
    payload["data"].append(
        {"id": "odd/types", "context_length": "many", "architecture": "?", "pricing": [1]}
    )
    models = by_id(parse_openrouter_models(payload))
    assert len(models) == 8  # 7 good, the id-less one dropped, the odd one kept
    odd = models["openrouter:odd/types"]
    assert odd.context_length is None
    assert odd.input_modalities == ("text",)
    assert not odd.pricing.known


@pytest.mark.parametrize("payload", [[], {"models": []}, {"data": {}}, "html", None])
def test_a_listing_without_data_array_is_a_protocol_error(payload: object) -> None:
    with pytest.raises(ProviderProtocolError):
        parse_openrouter_models(payload)
    with pytest.raises(ProviderProtocolError):
        parse_huggingface_models(payload)


def test_huggingface_takes_the_cheapest_live_provider() -> None:
    models = by_id(parse_huggingface_models(fixture_json("huggingface_models.json")))
    llama = models["huggingface:meta-llama/Llama-3.1-8B-Instruct"]
    # sambanova is cheaper but in error; novita is the cheapest live one.
    assert llama.pricing.prompt_per_million == Decimal("0.02")
    assert llama.pricing.completion_per_million == Decimal("0.05")
    assert llama.context_length == 16384
    assert "tools" in llama.supported_parameters
    assert llama.paid and not llama.free


def test_huggingface_drops_models_without_a_live_provider() -> None:
    models = by_id(parse_huggingface_models(fixture_json("huggingface_models.json")))
    assert "huggingface:deepseek-ai/DeepSeek-R1" not in models
    assert len(models) == 4


def test_huggingface_unpriced_is_unknown_and_zero_priced_is_free() -> None:
    models = by_id(parse_huggingface_models(fixture_json("huggingface_models.json")))
    qwen = models["huggingface:Qwen/Qwen2.5-VL-7B-Instruct"]
    assert not qwen.pricing.known and not qwen.free
    assert qwen.multimodal
    smol = models["huggingface:HuggingFaceTB/SmolLM3-3B"]
    assert smol.free and smol.pricing.known
    gemma = models["huggingface:google/gemma-3-27b-it"]
    # A provider quoting only an input price is not a price.
    assert gemma.pricing.prompt_per_million == Decimal("0.1")
    assert gemma.input_modalities == ("text",)
