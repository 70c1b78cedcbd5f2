"""The merged model catalog: memory in front of MongoDB in front of the providers.

Queries read memory only. Each provider's list is kept up to date by a task of its own
(started with `start()`, supervised: a crash is logged and the task starts again): at
start-up and again shortly before the list expires it reads MongoDB first (another
process may have fetched it already) and otherwise asks the upstream, within
`round_timeout` retries included. A query never waits for a refresh while any list is
in memory; on a cold start it waits for the first round at most `cold_wait` seconds and
answers with what is there, a provider still fetching reported as `loading`. A failed
refresh never replaces a good list: the last good one is served marked stale, and the
provider is asked again after `retry_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from providers.errors import ProviderAuthError, ProviderError
from providers.model import ModelInfo
from providers.redaction import Redactor
from providers.source import ModelSource
from resolvers.catalog.index import ModelIndex
from resolvers.catalog.store import CatalogStore
from schema.types.catalog import ModelCatalog, ProviderCatalogStatus

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

# How long a query on a cold start waits for the first round before answering with what
# is there.
COLD_START_WAIT_SECONDS = 2.0
# A task that crashed (a bug, not an upstream failure) starts again after this long,
# doubled for each crash in a row.
RESTART_DELAY_SECONDS = 1.0


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
    # The last fetch was refused with 401/403: the server's key (health's key_rejected).
    key_refused: bool = False

    @property
    def has_list(self) -> bool:
        return self.fetched_at is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is None or now >= self.expires_at

    def status(self, now: datetime) -> str:
        if not self.has_list:
            # Until its first round has ended a provider is loading; then it failed.
            return "error" if self.error else "loading"
        return "stale" if self.expired(now) else "ok"


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
    def providers(self) -> list[ProviderCatalogStatus]:
        return [
            ProviderCatalogStatus(
                provider=s.provider,
                status=s.status(self.now),
                model_count=len(s.models),
                fetched_at=s.fetched_at,
                error=s.error,
            )
            for s in self.states
        ]

    def model_catalog(self) -> ModelCatalog:
        """The `modelCatalog` answer: the index's lists, as built once per index."""
        index = self.index
        return ModelCatalog(
            all=index.nodes,
            multimodal=index.multimodal,
            text_only=index.text_only,
            free=index.free,
            paid=index.paid,
            by_provider=index.by_provider,
            stats=index.stats,
            cached=self.cached,
            stale=self.stale,
            fetched_at=self.fetched_at,
            expires_at=self.expires_at,
            providers=self.providers,
        )

    @property
    def stale(self) -> bool:
        return any(p.has_list and p.expired(self.now) for p in self.states)

    @property
    def fetched_at(self) -> datetime | None:
        return min((p.fetched_at for p in self.states if p.fetched_at), default=None)

    @property
    def expires_at(self) -> datetime | None:
        return min((p.expires_at for p in self.states if p.expires_at), default=None)


@dataclass(eq=False)
class _Worker:
    """One provider's refresh task, and what queries and `refresh()` tell it."""

    name: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set while the task waits for its next round with nothing asked of it.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    first_round: asyncio.Event = field(default_factory=asyncio.Event)
    forced: asyncio.Future[bool] | None = None
    task: asyncio.Task[None] | None = None


class Catalog:
    def __init__(
        self,
        sources: Sequence[ModelSource],
        *,
        store: CatalogStore,
        ttl_seconds: float,
        retry_seconds: float,
        round_timeout: float = 30.0,
        cold_wait: float = COLD_START_WAIT_SECONDS,
        clock: Clock = utc_now,
        redactor: Redactor | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._redactor = redactor or Redactor()
        self._sources = {source.name: source for source in sources}
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._retry = timedelta(seconds=retry_seconds)
        self._round_timeout = round_timeout
        self._cold_wait = cold_wait
        # A list is fetched again this long before it expires, so a healthy upstream's
        # list never goes stale.
        self._lead = timedelta(seconds=min(round_timeout, ttl_seconds / 4))
        self._clock = clock
        self._sleep = sleep
        self._states = {name: ProviderState(name) for name in self._sources}
        self._workers = {name: _Worker(name) for name in self._sources}
        self._index = ModelIndex([])
        self._index_key: tuple[tuple[ModelInfo, ...], ...] = ()

    @property
    def version(self) -> int:
        """The version of the model lists the last view served; a new one whenever they
        change, the same after a refresh that brought the same lists back."""
        return self._index.version

    def source(self, name: str) -> ModelSource | None:
        return self._sources.get(name)

    def start(self) -> None:
        """Start one refresh task per provider (call it with the loop running)."""
        for worker in self._workers.values():
            if worker.task is None:
                worker.task = asyncio.create_task(
                    self._supervise(worker), name=f"catalog-{worker.name}"
                )

    async def close(self) -> None:
        """Stop the refresh tasks, an upstream request in flight included."""
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self._workers.values():
            worker.task = None
            if worker.forced is not None:
                worker.forced.cancel()
                worker.forced = None

    def providers_named(self, model_ids: Sequence[str]) -> frozenset[str] | None:
        """The providers the full ids `model_ids` name; None when one is a bare id."""
        names = {model_id.strip().partition(":")[0] for model_id in model_ids}
        return frozenset(names) if names <= self._sources.keys() else None

    async def view(self, providers: Collection[str] | None = None) -> CatalogView:
        """What the catalog holds. Never waits for a refresh, except on a cold start:
        then at most `cold_wait` seconds for the first round of `providers` (all by
        default) that have no list yet."""
        self._wake_due()
        waiting = [
            worker.first_round.wait()
            for name, worker in self._workers.items()
            if (providers is None or name in providers)
            and worker.task is not None
            and not worker.first_round.is_set()
            and not self._states[name].has_list
        ]
        if waiting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._cold_wait):
                    await asyncio.gather(*waiting)
        return self._view(fetched_now=False)

    def snapshot(self) -> CatalogView:
        """What the catalog holds now, without waiting or waking anything (for metrics)."""
        return self._view(fetched_now=False)

    async def refresh(self) -> CatalogView:
        """Ask every provider now, whatever the cache says, and wait for the answers
        (at most one round's time)."""
        asked: list[asyncio.Future[bool]] = []
        for worker in self._workers.values():
            if worker.task is None:
                continue
            if worker.forced is None:
                worker.forced = asyncio.get_running_loop().create_future()
            asked.append(worker.forced)
            _wake(worker)
        done: set[asyncio.Future[bool]] = set()
        if asked:
            done, _ = await asyncio.wait(asked, timeout=self._round_timeout)
        fetched = any(not f.cancelled() and f.result() for f in done)
        return self._view(fetched_now=fetched)

    async def settled(self) -> None:
        """Until every refresh task waits for its next round with nothing to do."""
        await asyncio.gather(*(w.idle.wait() for w in self._workers.values() if w.task is not None))

    def _wake_due(self) -> None:
        """Wake the paused tasks whose round is due (their own timers normally do)."""
        now = self._clock()
        for name, worker in self._workers.items():
            due_at = self._due_at(self._states[name])
            if worker.idle.is_set() and (due_at is None or now >= due_at):
                _wake(worker)

    def _due_at(self, state: ProviderState) -> datetime | None:
        """When the provider's next round is due; None for now."""
        refresh_at = None if state.expires_at is None else state.expires_at - self._lead
        if state.failed_at is None:
            return refresh_at
        retry_at = state.failed_at + self._retry
        return retry_at if refresh_at is None else max(refresh_at, retry_at)

    async def _supervise(self, worker: _Worker) -> None:
        """One provider's task: a round, then a pause until the next one is due.
        A crash is logged and the task goes on after a pause that doubles with each
        crash in a row, up to the retry delay."""
        crashes = 0
        while True:
            try:
                await self._round(worker)
                crashes = 0
                due_at = self._due_at(self._states[worker.name])
                wait = self._retry if due_at is None else due_at - self._clock()
                delay = wait.total_seconds()
            except Exception:
                delay = min(
                    RESTART_DELAY_SECONDS * 2**crashes,
                    max(RESTART_DELAY_SECONDS, self._retry.total_seconds()),
                )
                crashes += 1
                log.exception(
                    "catalog task of %s crashed; it starts again in %gs", worker.name, delay
                )
                self._failed(worker.name, "internal error while refreshing")
            await self._pause(worker, max(0.0, delay))

    async def _pause(self, worker: _Worker, delay: float) -> None:
        if not worker.wake.is_set():
            worker.idle.set()
            sleeper = asyncio.ensure_future(self._sleep(delay))
            woken = asyncio.ensure_future(worker.wake.wait())
            try:
                await asyncio.wait((sleeper, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
        worker.idle.clear()
        worker.wake.clear()

    async def _round(self, worker: _Worker) -> None:
        forced, worker.forced = worker.forced, None
        name = worker.name
        models: list[ModelInfo] | None = None
        try:
            try:
                async with asyncio.timeout(self._round_timeout):
                    models = await self._refresh(name, force=forced is not None)
            except TimeoutError:
                message = f"no model list within {self._round_timeout:g}s"
                log.warning("catalog refresh of %s failed: %s", name, message)
                self._failed(name, message)
            state = self._states[name]
            if models is not None and state.fetched_at and state.expires_at:
                await self._store.save(
                    name, models, fetched_at=state.fetched_at, expires_at=state.expires_at
                )
        finally:
            worker.first_round.set()
            if forced is not None and not forced.done():
                forced.set_result(models is not None)

    async def _refresh(self, name: str, *, force: bool) -> list[ModelInfo] | None:
        """Bring one provider up to date; its list when it came from upstream now."""
        if not force:
            # Another process sharing the database may have fetched it already.
            stored = await self._store.load(name)
            state = self._states[name]
            if stored is not None and stored.models and not _newer(state, stored.fetched_at):
                state = replace(
                    state,
                    models=stored.models,
                    fetched_at=stored.fetched_at,
                    expires_at=stored.expires_at,
                    error=None,
                    failed_at=None,
                    key_refused=False,
                )
                self._states[name] = state
            if state.expires_at is not None and self._clock() < state.expires_at - self._lead:
                return None
        try:
            models = await self._fetch(name)
        except ProviderError as error:
            message = self._redactor.redact(error.message)
            log.warning("catalog refresh of %s failed: %s", name, message)
            self._failed(name, message, key_refused=isinstance(error, ProviderAuthError))
            return None
        now = self._clock()
        self._states[name] = replace(
            self._states[name],
            models=tuple(models),
            fetched_at=now,
            expires_at=now + self._ttl,
            error=None,
            failed_at=None,
            key_refused=False,
        )
        log.info("catalog of %s refreshed: %d models", name, len(models))
        return models

    def _failed(self, name: str, message: str, *, key_refused: bool = False) -> None:
        self._states[name] = replace(
            self._states[name], error=message, failed_at=self._clock(), key_refused=key_refused
        )

    async def _fetch(self, name: str) -> list[ModelInfo]:
        models = await self._sources[name].list_models()
        if not models:
            # An empty list is a broken upstream, never a reason to drop a good one.
            raise ProviderError("listed no models", provider=name)
        return models

    def _view(self, *, fetched_now: bool) -> CatalogView:
        states = tuple(self._states.values())
        key = tuple(state.models for state in states)
        if key != self._index_key:
            self._index = ModelIndex([(s.provider, s.models) for s in states])
        # Kept even when equal: a refresh that brings the same list back makes new tuples,
        # and only the lists compared last are matched by identity (tuples skip `==` for an
        # element that is the same object), so an old key would cost a model-by-model
        # comparison on every view from then on.
        self._index_key = key
        # Cached: served from lists fetched earlier; never when there is nothing at all.
        cached = not fetched_now and any(s.has_list for s in states)
        return CatalogView(index=self._index, states=states, cached=cached, now=self._clock())


def _wake(worker: _Worker) -> None:
    """Start the worker's next round now (after the one under way, if any)."""
    worker.idle.clear()
    worker.wake.set()


def _newer(state: ProviderState, than: datetime) -> bool:
    return state.fetched_at is not None and state.fetched_at >= than
