"""Model listing of any OpenAI-compatible server (`GET /models`): Ollama, vLLM, LM Studio."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from pydantic import SecretStr

from providers.catalog_json import as_mapping, as_positive_int, as_text, data_list
from providers.errors import ProviderProtocolError
from providers.fetch import RetryPolicy, get_json
from providers.huggingface import bearer_headers
from providers.model import ModelInfo, Pricing


class OpenAICompatibleModels:
    """Such servers publish no prices: a configured price applies to all their models."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        name: str,
        base_url: str,
        api_key: SecretStr | None,
        pricing: Pricing,
        policy: RetryPolicy,
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{base_url.rstrip('/')}/models"
        self._headers = bearer_headers(api_key)
        self._pricing = pricing
        self._policy = policy
        # Local servers usually need no key; being listed in settings is configuration enough.
        self.configured = True

    async def list_models(self) -> list[ModelInfo]:
        payload = await get_json(
            self._session, self._url, provider=self.name, headers=self._headers, policy=self._policy
        )
        return parse_openai_models(self.name, payload, self._pricing)


def parse_openai_models(provider: str, payload: object, pricing: Pricing) -> list[ModelInfo]:
    data = data_list(payload)
    if data is None:
        raise ProviderProtocolError("model list has no `data` array", provider=provider)
    models: dict[str, ModelInfo] = {}
    for entry in data:
        item: Mapping[str, object] = as_mapping(entry)
        upstream_id = as_text(item.get("id"), limit=300)
        if upstream_id is None:
            continue
        models.setdefault(
            upstream_id,
            ModelInfo(
                provider=provider,
                upstream_id=upstream_id,
                name=upstream_id,
                context_length=as_positive_int(item.get("context_length"))
                or as_positive_int(item.get("max_model_len")),
                pricing=pricing,
            ),
        )
    return list(models.values())
