"""Hugging Face inference router: model listing.

The router lists each model with the inference providers that serve it. A model is
offered when at least one of them is live; its price is the cheapest live priced one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from providers.catalog_json import (
    as_mapping,
    as_positive_int,
    as_text,
    data_list,
    modalities,
)
from providers.errors import ProviderProtocolError
from providers.model import ModelInfo, Pricing
from providers.pricing import parse_amount

log = logging.getLogger(__name__)

NAME = "huggingface"
LIVE = "live"


def parse_huggingface_models(payload: object) -> list[ModelInfo]:
    data = data_list(payload)
    if data is None:
        raise ProviderProtocolError("model list has no `data` array", provider=NAME)
    models: dict[str, ModelInfo] = {}
    for entry in data:
        model = _parse_model(as_mapping(entry))
        if model is not None:
            models.setdefault(model.upstream_id, model)
    return list(models.values())


def _parse_model(entry: Mapping[str, Any]) -> ModelInfo | None:
    upstream_id = as_text(entry.get("id"), limit=300)
    if upstream_id is None:
        return None
    live = [
        as_mapping(p) for p in entry.get("providers") or () if as_mapping(p).get("status") == LIVE
    ]
    if not live:
        return None
    architecture = as_mapping(entry.get("architecture"))
    context_lengths = [n for p in live if (n := as_positive_int(p.get("context_length")))]
    return ModelInfo(
        provider=NAME,
        upstream_id=upstream_id,
        name=upstream_id,
        description=None,
        context_length=max(context_lengths, default=None),
        input_modalities=modalities(architecture, "input_modalities"),
        output_modalities=modalities(architecture, "output_modalities"),
        pricing=_cheapest(live),
        supported_parameters=("tools",)
        if any(p.get("supports_tools") is True for p in live)
        else (),
        supports_tools=_supported(live, "supports_tools"),
        supports_structured_output=_supported(live, "supports_structured_output"),
    )


def _supported(live: list[Mapping[str, Any]], key: str) -> bool | None:
    """True when a live provider says so, False when every one says not; unknown
    (None, then tried) when some or all of them do not say."""
    said = [p.get(key) for p in live]
    if any(value is True for value in said):
        return True
    if all(value is False for value in said):
        return False
    return None


def _cheapest(live: list[Mapping[str, Any]]) -> Pricing:
    """The cheapest live provider by input plus output price; unknown when none is priced."""
    best: tuple[Decimal, Decimal] | None = None
    for provider in live:
        pricing = as_mapping(provider.get("pricing"))
        prompt, completion = parse_amount(pricing.get("input")), parse_amount(pricing.get("output"))
        if prompt is None or completion is None:
            continue
        if best is None or prompt + completion < best[0] + best[1]:
            best = (prompt, completion)
    if best is None:
        return Pricing()
    return Pricing(prompt_per_million=best[0], completion_per_million=best[1])
