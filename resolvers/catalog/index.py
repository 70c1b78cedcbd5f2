"""The merged catalog, grouped once per refresh rather than once per query.

Each provider model is turned into the API's `Model` here, once per index (so once per
version of the lists): queries hand out the same objects."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal

import strawberry

from providers.model import ModelInfo, Pricing
from schema.types.catalog import Model, ModelPricing, ModelStats, ProviderCount, ProviderModels

# Every index built in this process gets the next number: a cheap catalog version.
_serials = itertools.count(1)

# A provider model and the API's view of it.
Entry = tuple[ModelInfo, Model]


def _amount(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def model_node(model: ModelInfo) -> Model:
    """The API's `Model` of a provider model (prices as floats)."""
    return Model(
        id=strawberry.ID(model.id),
        upstream_id=model.upstream_id,
        provider=model.provider,
        name=model.name,
        description=model.description,
        context_length=model.context_length,
        input_modalities=list(model.input_modalities),
        output_modalities=list(model.output_modalities),
        multimodal=model.multimodal,
        free=model.free,
        pricing=_pricing(model.pricing),
        supported_parameters=list(model.supported_parameters),
        supports_tools=model.supports_tools,
        supports_reasoning=model.supports_reasoning,
        supports_structured_output=model.supports_structured_output,
        max_completion_tokens=model.max_completion_tokens,
    )


def _pricing(pricing: Pricing) -> ModelPricing:
    return ModelPricing(
        known=pricing.known,
        prompt_per_million=_amount(pricing.prompt_per_million),
        completion_per_million=_amount(pricing.completion_per_million),
        per_request=_amount(pricing.per_request),
        per_image=_amount(pricing.per_image),
        cache_read_per_million=_amount(pricing.cache_read_per_million),
        cache_write_per_million=_amount(pricing.cache_write_per_million),
        reasoning_per_million=_amount(pricing.reasoning_per_million),
    )


class ModelIndex:
    """All models sorted by id, with the groups the model picker shows (as API types)."""

    def __init__(self, lists: Sequence[tuple[str, Sequence[ModelInfo]]]) -> None:
        groups = [
            (name, [(m, model_node(m)) for m in sorted(models, key=lambda m: m.upstream_id)])
            for name, models in lists
        ]
        # Unique per index (never reused, unlike `id()`): whatever was computed from one
        # index's lists can be kept under its version.
        self.version = next(_serials)
        self.entries: tuple[Entry, ...] = tuple(
            sorted((e for _, group in groups for e in group), key=lambda e: e[0].id)
        )
        self.all = tuple(info for info, _ in self.entries)
        self.nodes = [node for _, node in self.entries]
        self.multimodal = [node for info, node in self.entries if info.multimodal]
        self.text_only = [node for info, node in self.entries if info.text_only]
        self.free = [node for info, node in self.entries if info.free]
        self.paid = [node for info, node in self.entries if info.paid]
        self.by_provider = [
            ProviderModels(provider=name, models=[node for _, node in group])
            for name, group in groups
        ]
        self.stats = ModelStats(
            total=len(self.all),
            multimodal=len(self.multimodal),
            text_only=len(self.text_only),
            free=len(self.free),
            paid=len(self.paid),
            by_provider=[ProviderCount(provider=name, count=len(g)) for name, g in groups],
        )
        self._by_id = {entry[0].id: entry for entry in self.entries}
        # A bare upstream id resolves to the first provider (in configured order) offering it.
        self._by_upstream: dict[str, Entry] = {}
        for _, group in groups:
            for entry in group:
                self._by_upstream.setdefault(entry[0].upstream_id, entry)

    def _entry(self, model_id: str) -> Entry | None:
        return self._by_id.get(model_id) or self._by_upstream.get(model_id)

    def get(self, model_id: str) -> ModelInfo | None:
        """A model by full id (`provider:upstream`) or by bare upstream id."""
        entry = self._entry(model_id)
        return None if entry is None else entry[0]

    def node(self, model_id: str) -> Model | None:
        """The API's `Model` of `get(model_id)`."""
        entry = self._entry(model_id)
        return None if entry is None else entry[1]
