"""The merged catalog, grouped once per refresh rather than once per query."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from providers.model import ModelInfo

# Every index built in this process gets the next number: a cheap catalog version.
_serials = itertools.count(1)


@dataclass(frozen=True)
class ProviderCount:
    provider: str
    count: int


@dataclass(frozen=True)
class ModelStats:
    total: int
    multimodal: int
    text_only: int
    free: int
    paid: int
    by_provider: list[ProviderCount]


@dataclass(frozen=True)
class ProviderModels:
    provider: str
    models: tuple[ModelInfo, ...]


@dataclass(frozen=True)
class ModelIndex:
    """All models sorted by id, with the groups the model picker shows."""

    all: tuple[ModelInfo, ...]
    by_provider: tuple[ProviderModels, ...]
    multimodal: tuple[ModelInfo, ...] = field(init=False)
    text_only: tuple[ModelInfo, ...] = field(init=False)
    free: tuple[ModelInfo, ...] = field(init=False)
    paid: tuple[ModelInfo, ...] = field(init=False)
    _by_id: dict[str, ModelInfo] = field(init=False, repr=False)
    _by_upstream: dict[str, ModelInfo] = field(init=False, repr=False)
    # Unique per index (never reused, unlike `id()`): whatever was computed from one
    # index's lists can be kept under its version.
    version: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "version", next(_serials))
        setter(self, "multimodal", tuple(m for m in self.all if m.multimodal))
        setter(self, "text_only", tuple(m for m in self.all if m.text_only))
        setter(self, "free", tuple(m for m in self.all if m.free))
        setter(self, "paid", tuple(m for m in self.all if m.paid))
        setter(self, "_by_id", {m.id: m for m in self.all})
        # A bare upstream id resolves to the first provider (in configured order) offering it.
        by_upstream: dict[str, ModelInfo] = {}
        for group in self.by_provider:
            for model in group.models:
                by_upstream.setdefault(model.upstream_id, model)
        setter(self, "_by_upstream", by_upstream)

    @classmethod
    def build(cls, lists: Sequence[tuple[str, Sequence[ModelInfo]]]) -> ModelIndex:
        groups = tuple(
            ProviderModels(name, tuple(sorted(models, key=lambda m: m.upstream_id)))
            for name, models in lists
        )
        merged = tuple(sorted((m for g in groups for m in g.models), key=lambda m: m.id))
        return cls(all=merged, by_provider=groups)

    def get(self, model_id: str) -> ModelInfo | None:
        """A model by full id (`provider:upstream`) or by bare upstream id."""
        return self._by_id.get(model_id) or self._by_upstream.get(model_id)

    @property
    def stats(self) -> ModelStats:
        return ModelStats(
            total=len(self.all),
            multimodal=len(self.multimodal),
            text_only=len(self.text_only),
            free=len(self.free),
            paid=len(self.paid),
            by_provider=[ProviderCount(g.provider, len(g.models)) for g in self.by_provider],
        )
