"""Model listing of any OpenAI-compatible server (`GET /models`): Ollama, vLLM, LM Studio.

Such servers publish no prices: a configured price applies to all their models.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers.catalog_json import as_mapping, as_positive_int, as_text, data_list
from providers.errors import ProviderProtocolError
from providers.model import ModelInfo, Pricing


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
