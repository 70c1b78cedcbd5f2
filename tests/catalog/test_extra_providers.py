"""Extra OpenAI-compatible providers (Ollama, vLLM, LM Studio) from AIPASTA_PROVIDERS."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from aipasta.settings import SettingsError, load_settings
from providers.errors import ProviderProtocolError
from providers.model import Pricing
from providers.openai_models import parse_openai_models
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.server import StartApp

OLLAMA_LISTING = {
    "object": "list",
    "data": [
        {"id": "llama3.2:3b", "object": "model", "owned_by": "library"},
        {"id": "qwen2.5:7b", "object": "model", "max_model_len": 32768},
        {"object": "model"},
    ],
}


def test_listing_is_parsed_with_the_configured_price() -> None:
    pricing = Pricing(Decimal("0"), Decimal("0"))
    models = parse_openai_models("ollama", OLLAMA_LISTING, pricing)
    assert [m.id for m in models] == ["ollama:llama3.2:3b", "ollama:qwen2.5:7b"]
    assert models[1].context_length == 32768
    assert all(m.free for m in models)
    unpriced = parse_openai_models("vllm", OLLAMA_LISTING, Pricing())
    assert not unpriced[0].pricing.known and not unpriced[0].free
    with pytest.raises(ProviderProtocolError):
        parse_openai_models("ollama", {"models": []}, pricing)


def test_settings_read_the_list_and_the_key_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env.local").write_text("LOCAL_LLM_KEY=from-env-local\n")
    monkeypatch.setenv(
        "AIPASTA_PROVIDERS",
        '[{"name": "ollama", "base_url": "http://127.0.0.1:11434/v1/",'
        ' "api_key_env": "LOCAL_LLM_KEY", "prompt_price_per_million": "0.1",'
        ' "completion_price_per_million": "0.2"}]',
    )
    settings = load_settings()
    (extra,) = settings.providers
    assert extra.base_url == "http://127.0.0.1:11434/v1"
    key = settings.provider_key(extra)
    assert key is not None and key.get_secret_value() == "from-env-local"
    assert "from-env-local" not in repr(settings)


@pytest.mark.parametrize(
    "value",
    [
        '[{"name": "openrouter", "base_url": "http://x"}]',
        '[{"name": "a", "base_url": "ftp://x"}]',
        '[{"name": "a", "base_url": "http://x"}, {"name": "a", "base_url": "http://y"}]',
        '[{"name": "Bad Name", "base_url": "http://x"}]',
        "not json",
    ],
)
def test_bad_provider_lists_name_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AIPASTA_PROVIDERS", value)
    with pytest.raises(SettingsError, match="AIPASTA_PROVIDERS"):
        load_settings()


async def test_extra_provider_models_join_the_catalog(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    catalog_upstream.set("/ollama/models", Reply(body=OLLAMA_LISTING))
    app = await start_app(
        AIPASTA_PROVIDERS=[{"name": "ollama", "base_url": catalog_upstream.url("ollama")}]
    )
    body = await app.graphql("{ modelCatalog { stats { total byProvider { provider count } } } }")
    stats = body["data"]["modelCatalog"]["stats"]
    assert stats["total"] == 13
    assert {"provider": "ollama", "count": 2} in stats["byProvider"]
    model = await app.graphql('{ model(id: "ollama:qwen2.5:7b") { provider pricing { known } } }')
    assert model["data"]["model"] == {"provider": "ollama", "pricing": {"known": False}}
