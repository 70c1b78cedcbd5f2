"""The merged model catalog: memory in front of MongoDB in front of the providers.

A query reads memory only, unless a provider's list has expired. Then that one
provider is refreshed, once: concurrent callers wait for the same fetch. A failed
refresh never replaces a good list: the last good one is served marked stale, and
the provider is not asked again for `retry_seconds`, so a dead upstream does not
slow every query down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from providers.errors import ProviderError
from providers.model import ModelInfo
from providers.redaction import Redactor
from providers.source import ModelSource
from resolvers.catalog_index import ModelIndex, ModelStats, ProviderModels
from resolvers.catalog_store import CatalogStore

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProviderState:
    provider: str
    models: tuple[ModelInfo, ...] = ()
    fetched_at: datetime | None = None
    expires_at: datetime | None = None
    error: str | None = None
    failed_at: datetime | None = None
    consulted_store: bool = False

    @property
    def has_list(self) -> bool:
        return self.fetched_at is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is None or now >= self.expires_at

    def status(self, now: datetime) -> str:
        if not self.has_list:
            return "error" if self.error else "pending"
        return "stale" if self.expired(now) else "ok"


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    status: str
    model_count: int
    fetched_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class CatalogView:
    """What one query sees: the index, each provider's state, and whether it was cached."""

    index: ModelIndex
    states: tuple[ProviderState, ...]
    cached: bool
    now: datetime

    @property
    def all(self) -> tuple[ModelInfo, ...]:
        return self.index.all

    @property
    def multimodal(self) -> tuple[ModelInfo, ...]:
        return self.index.multimodal

    @property
    def text_only(self) -> tuple[ModelInfo, ...]:
        return self.index.text_only

    @property
    def free(self) -> tuple[ModelInfo, ...]:
        return self.index.free

    @property
    def paid(self) -> tuple[ModelInfo, ...]:
        return self.index.paid

    @property
    def by_provider(self) -> tuple[ProviderModels, ...]:
        return self.index.by_provider

    @property
    def stats(self) -> ModelStats:
        return self.index.stats

    @property
    def providers(self) -> list[ProviderStatus]:
        return [
            ProviderStatus(
                provider=s.provider,
                status=s.status(self.now),
                model_count=len(s.models),
                fetched_at=s.fetched_at,
                error=s.error,
            )
            for s in self.states
        ]

    @property
    def stale(self) -> bool:
        return any(p.has_list and p.expired(self.now) for p in self.states)

    @property
    def fetched_at(self) -> datetime | None:
        return min((p.fetched_at for p in self.states if p.fetched_at), default=None)

    @property
    def expires_at(self) -> datetime | None:
        return min((p.expires_at for p in self.states if p.expires_at), default=None)


class Catalog:
    def __init__(
        self,
        sources: Sequence[ModelSource],
        *,
        store: CatalogStore,
        ttl_seconds: float,
        retry_seconds: float,
        clock: Clock = utc_now,
        redactor: Redactor | None = None,
    ) -> None:
        self._redactor = redactor or Redactor()
        self._sources = {source.name: source for source in sources}
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._retry = timedelta(seconds=retry_seconds)
        self._clock = clock
        self._states = {name: ProviderState(name) for name in self._sources}
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._index = ModelIndex.build([])
        self._index_key: tuple[tuple[ModelInfo, ...], ...] = ()

    @property
    def version(self) -> int:
        """The version of the model lists the last view served; a new one whenever they
        change, the same after a refresh that brought the same lists back."""
        return self._index.version

    def source(self, name: str) -> ModelSource | None:
        return self._sources.get(name)

    async def view(self) -> CatalogView:
        """The catalog, refreshing whichever providers are due."""
        now = self._clock()
        due = [name for name, state in self._states.items() if self._due(state, now)]
        fetched = await self._refresh_all(due, force=False) if due else False
        return self._view(cached=not fetched)

    def snapshot(self) -> CatalogView:
        """What the catalog holds now, without refreshing anything (for metrics)."""
        return self._view(cached=True)

    async def refresh(self) -> CatalogView:
        """Ask every provider now, whatever the cache says."""
        fetched = await self._refresh_all(list(self._sources), force=True)
        return self._view(cached=not fetched)

    def _due(self, state: ProviderState, now: datetime) -> bool:
        if not state.expired(now):
            return False
        return state.failed_at is None or now - state.failed_at >= self._retry

    async def _refresh_all(self, names: list[str], *, force: bool) -> bool:
        results = await asyncio.gather(*(self._refresh_once(name, force) for name in names))
        return any(results)

    async def _refresh_once(self, name: str, force: bool) -> bool:
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.create_task(self._refresh(name, force), name=f"catalog-{name}")
            self._inflight[name] = task
            task.add_done_callback(lambda _: self._inflight.pop(name, None))
        # Shielded: one caller going away must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    async def _refresh(self, name: str, force: bool) -> bool:
        """Bring one provider up to date; True when its list came from upstream now."""
        state = self._states[name]
        if not force and not state.consulted_store:
            stored = await self._store.load(name)
            state = replace(state, consulted_store=True)
            if stored is not None and stored.models and not state.has_list:
                state = replace(
                    state,
                    models=stored.models,
                    fetched_at=stored.fetched_at,
                    expires_at=stored.expires_at,
                )
            self._states[name] = state
            if not state.expired(self._clock()):
                return False
        try:
            models = await self._fetch(name)
        except ProviderError as error:
            message = self._redactor.redact(error.message)
            log.warning("catalog refresh of %s failed: %s", name, message)
            self._states[name] = replace(state, error=message, failed_at=self._clock())
            return False
        now = self._clock()
        expires_at = now + self._ttl
        self._states[name] = replace(
            state,
            models=tuple(models),
            fetched_at=now,
            expires_at=expires_at,
            error=None,
            failed_at=None,
            consulted_store=True,
        )
        log.info("catalog of %s refreshed: %d models", name, len(models))
        await self._store.save(name, models, fetched_at=now, expires_at=expires_at)
        return True

    async def _fetch(self, name: str) -> list[ModelInfo]:
        models = await self._sources[name].list_models()
        if not models:
            # An empty list is a broken upstream, never a reason to drop a good one.
            raise ProviderError("listed no models", provider=name)
        return models

    def _view(self, *, cached: bool) -> CatalogView:
        states = tuple(self._states.values())
        key = tuple(state.models for state in states)
        if key != self._index_key:
            self._index = ModelIndex.build([(s.provider, s.models) for s in states])
        # Kept even when equal: a refresh that brings the same list back makes new tuples,
        # and only the lists compared last are matched by identity (tuples skip `==` for an
        # element that is the same object), so an old key would cost a model-by-model
        # comparison on every view from then on.
        self._index_key = key
        return CatalogView(index=self._index, states=states, cached=cached, now=self._clock())
