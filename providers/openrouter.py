"""OpenRouter: model listing and the headers it asks clients to send."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from providers.catalog_json import (
    as_mapping,
    as_positive_int,
    as_strings,
    as_text,
    data_list,
    modalities,
)
from providers.errors import ProviderProtocolError
from providers.model import ModelInfo, Pricing
from providers.pricing import parse_amount, per_token_to_per_million

log = logging.getLogger(__name__)

NAME = "openrouter"
FREE_SUFFIX = ":free"
# `GET /models` lists text-output models only unless asked for every output modality.
LISTING_QUERY = {"output_modalities": "all"}
# What `supported_parameters` names for each capability.
TOOLS = frozenset({"tools"})
REASONING = frozenset({"reasoning", "include_reasoning"})
STRUCTURED_OUTPUT = frozenset({"structured_outputs"})


def openrouter_headers(
    api_key: SecretStr | None, *, app_url: str, app_title: str
) -> dict[str, str]:
    # OpenRouter attributes traffic to the app through these two headers. No Accept
    # here: the listing asks for JSON, a chat for an event stream.
    headers = {"HTTP-Referer": app_url, "X-Title": app_title}
    if api_key is not None and api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers


def parse_openrouter_models(payload: object, *, provider: str = NAME) -> list[ModelInfo]:
    """OpenRouter's listing; `provider` names another server that lists models its way."""
    data = data_list(payload)
    if data is None:
        raise ProviderProtocolError("model list has no `data` array", provider=provider)
    models: dict[str, ModelInfo] = {}
    skipped = 0
    for entry in data:
        model = _parse_model(as_mapping(entry), provider)
        if model is None:
            skipped += 1
        else:
            models.setdefault(model.upstream_id, model)
    if skipped:
        log.warning("%s: skipped %d malformed model entries", provider, skipped)
    return list(models.values())


def _parse_model(entry: Mapping[str, Any], provider: str) -> ModelInfo | None:
    upstream_id = as_text(entry.get("id"), limit=300)
    if upstream_id is None:
        return None
    architecture = as_mapping(entry.get("architecture"))
    top_provider = as_mapping(entry.get("top_provider"))
    listed = entry.get("supported_parameters")
    parameters = as_strings(listed)
    # No list at all: unknown (such models are tried); a list without it: unsupported.
    known = isinstance(listed, list)
    return ModelInfo(
        provider=provider,
        upstream_id=upstream_id,
        name=as_text(entry.get("name"), limit=300) or upstream_id,
        description=as_text(entry.get("description")),
        context_length=as_positive_int(entry.get("context_length"))
        or as_positive_int(top_provider.get("context_length")),
        input_modalities=modalities(architecture, "input_modalities"),
        output_modalities=modalities(architecture, "output_modalities"),
        pricing=_pricing(as_mapping(entry.get("pricing"))),
        supported_parameters=parameters,
        free_tier=upstream_id.endswith(FREE_SUFFIX),
        supports_tools=not TOOLS.isdisjoint(parameters) if known else None,
        supports_reasoning=not REASONING.isdisjoint(parameters) if known else None,
        supports_structured_output=not STRUCTURED_OUTPUT.isdisjoint(parameters) if known else None,
        max_completion_tokens=as_positive_int(top_provider.get("max_completion_tokens")),
    )


def _pricing(pricing: Mapping[str, Any]) -> Pricing:
    prompt = per_token_to_per_million(pricing.get("prompt"))
    completion = per_token_to_per_million(pricing.get("completion"))
    if prompt is None or completion is None:
        return Pricing()
    paid = prompt > 0 or completion > 0

    def extra(key: str) -> Decimal | None:
        # OpenRouter lists "0" for prices a model has no separate rate for (reasoning
        # billed as completion tokens): on a paid model that is no price, not free.
        amount = per_token_to_per_million(pricing.get(key))
        return None if amount is None or (paid and amount == 0) else amount

    return Pricing(
        prompt_per_million=prompt,
        completion_per_million=completion,
        per_request=parse_amount(pricing.get("request", "0")),
        per_image=parse_amount(pricing.get("image", "0")),
        cache_read_per_million=extra("input_cache_read"),
        cache_write_per_million=extra("input_cache_write"),
        reasoning_per_million=extra("internal_reasoning"),
    )
