"""The catalog cache: memory, then MongoDB, then the providers; stale beats empty.

Each provider's list is refreshed by a background task; a test moves the fake clock,
lets a query wake the task whose round is due, and waits for `settled()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from documents.catalog import CachedModelList
from documents.database import Database
from providers.fake import ScriptedSource, model
from providers.model import ModelInfo
from resolvers.catalog.service import Catalog
from resolvers.catalog.store import CatalogStore
from tests.support.clocks import FakeClock, ManualSleep

TTL = 1800
ROUND = 30  # the round timeout, also how long before expiry a list is fetched again

MakeCatalog = Callable[..., Catalog]


@pytest_asyncio.fixture
async def make_catalog() -> AsyncIterator[MakeCatalog]:
    """Started catalogs, closed at the end of the test."""
    started: list[Catalog] = []

    def make(
        sources: list[ScriptedSource],
        database: Database | None,
        clock: FakeClock,
        **options: Any,
    ) -> Catalog:
        catalog = Catalog(
            sources,
            store=CatalogStore(database),
            ttl_seconds=TTL,
            retry_seconds=60,
            clock=clock,
            **{"round_timeout": ROUND, **options},
        )
        catalog.start()
        started.append(catalog)
        return catalog

    yield make
    for catalog in started:
        await catalog.close()


async def expired_view_then_refreshed(catalog: Catalog) -> None:
    """A query after expiry answers at once and wakes the refresh; wait for it."""
    await catalog.view()
    await catalog.settled()


async def test_first_query_waits_for_the_first_round_then_memory_serves(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    openrouter, hf = ScriptedSource("openrouter"), ScriptedSource("huggingface")
    catalog = make_catalog([openrouter, hf], database, clock)

    first = await catalog.view()
    second = await catalog.view()

    assert first.cached and second.cached
    assert [m.id for m in second.all] == [
        "huggingface:huggingface-model",
        "openrouter:openrouter-model",
    ]
    assert (openrouter.calls, hf.calls) == (1, 1)
    assert first.expires_at is not None and first.fetched_at == clock.now


async def test_hundred_concurrent_cold_queries_make_one_call_per_provider(
    database: Database, make_catalog: MakeCatalog
) -> None:
    openrouter, hf = ScriptedSource("openrouter"), ScriptedSource("huggingface")
    gate = asyncio.Event()
    openrouter.gate = hf.gate = gate
    catalog = make_catalog([openrouter, hf], database, FakeClock())

    queries = [asyncio.create_task(catalog.view()) for _ in range(100)]
    await asyncio.sleep(0)  # let every query reach the in-flight fetch
    gate.set()
    views = await asyncio.gather(*queries)

    assert (openrouter.calls, hf.calls) == (1, 1)
    assert all(len(v.all) == 2 for v in views)


async def test_expired_list_is_refreshed(database: Database, make_catalog: MakeCatalog) -> None:
    clock = FakeClock()
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, clock)
    await catalog.view()

    clock.advance(TTL - ROUND - 1)
    assert (await catalog.view()).cached
    await catalog.settled()
    assert source.calls == 1
    source.models = [model("openrouter", "new-model")]
    clock.advance(2)  # due again, before it expires
    before = await catalog.view()
    assert [m.upstream_id for m in before.all] == ["openrouter-model"] and not before.stale
    await catalog.settled()
    view = await catalog.view()

    assert source.calls == 2
    assert view.cached and not view.stale
    assert [m.upstream_id for m in view.all] == ["new-model"]


async def test_failing_provider_keeps_last_good_list_marked_stale(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    good, flaky = ScriptedSource("huggingface"), ScriptedSource("openrouter")
    catalog = make_catalog([flaky, good], database, clock)
    await catalog.view()

    clock.advance(TTL + 1)
    flaky.break_with_503()
    await expired_view_then_refreshed(catalog)
    view = await catalog.view()

    assert view.stale
    assert {m.id for m in view.all} == {
        "openrouter:openrouter-model",
        "huggingface:huggingface-model",
    }
    statuses = {p.provider: p for p in view.providers}
    assert statuses["openrouter"].status == "stale"
    assert statuses["openrouter"].error == "HTTP 503"
    assert statuses["openrouter"].model_count == 1
    assert statuses["huggingface"].status == "ok"


async def test_failed_provider_is_not_asked_again_until_the_retry_delay(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, clock)
    await catalog.view()
    clock.advance(TTL + 1)
    source.break_with_503()
    await expired_view_then_refreshed(catalog)
    await expired_view_then_refreshed(catalog)
    assert source.calls == 2  # the failed refresh, not one per query

    clock.advance(61)
    source.fail_with = None
    await expired_view_then_refreshed(catalog)
    view = await catalog.view()
    assert source.calls == 3
    assert not view.stale


async def test_empty_answer_never_replaces_a_good_list(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, clock)
    await catalog.view()
    clock.advance(TTL + 1)
    source.models = []
    await expired_view_then_refreshed(catalog)
    view = await catalog.view()
    assert [m.upstream_id for m in view.all] == ["openrouter-model"]
    assert view.stale


async def test_with_nothing_cached_the_other_provider_is_still_served(
    database: Database, make_catalog: MakeCatalog
) -> None:
    broken, fine = ScriptedSource("openrouter"), ScriptedSource("huggingface")
    broken.break_with_503()
    catalog = make_catalog([broken, fine], database, FakeClock())
    view = await catalog.view()
    assert [m.id for m in view.all] == ["huggingface:huggingface-model"]
    statuses = {p.provider: p for p in view.providers}
    assert statuses["openrouter"].status == "error"
    assert statuses["openrouter"].model_count == 0
    assert not view.stale


async def test_second_process_reads_mongodb_instead_of_upstream(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    first_source = ScriptedSource(
        "openrouter", [model("openrouter", "a"), model("openrouter", "b")]
    )
    await make_catalog([first_source], database, clock).view()
    stored = await CachedModelList.find_one(CachedModelList.provider == "openrouter")
    assert stored is not None and len(stored.models) == 2

    other_source = ScriptedSource("openrouter")
    view = await make_catalog([other_source], database, clock).view()

    assert other_source.calls == 0
    assert view.cached
    assert [m.upstream_id for m in view.all] == ["a", "b"]


async def test_expired_mongodb_list_is_the_fallback_after_a_restart(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    await make_catalog([ScriptedSource("openrouter")], database, clock).view()
    clock.advance(TTL + 5)

    restarted_source = ScriptedSource("openrouter")
    restarted_source.break_with_503()
    view = await make_catalog([restarted_source], database, clock).view()

    assert restarted_source.calls == 1
    assert [m.upstream_id for m in view.all] == ["openrouter-model"]
    assert view.stale


async def test_prices_survive_the_mongodb_round_trip_exactly(
    database: Database, make_catalog: MakeCatalog
) -> None:
    from decimal import Decimal

    from providers.model import Pricing

    priced = model(
        "openrouter",
        "m",
        pricing=Pricing(Decimal("0.028"), Decimal("0.054"), Decimal("0"), Decimal("0.0048")),
        input_modalities=("text", "image"),
        supported_parameters=("tools",),
    )
    clock = FakeClock()
    await make_catalog([ScriptedSource("openrouter", [priced])], database, clock).view()
    view = await make_catalog([ScriptedSource("openrouter", [])], database, clock).view()
    assert view.all == (priced,)


async def test_works_from_memory_without_a_database(make_catalog: MakeCatalog) -> None:
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], None, FakeClock())
    assert len((await catalog.view()).all) == 1
    assert (await catalog.view()).cached
    assert source.calls == 1


async def test_refresh_asks_upstream_even_when_fresh(
    database: Database, make_catalog: MakeCatalog
) -> None:
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, FakeClock())
    await catalog.view()
    view = await catalog.refresh()
    assert source.calls == 2 and not view.cached  # fetched for this request


async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
    database: Database, make_catalog: MakeCatalog
) -> None:
    source = ScriptedSource("openrouter")
    source.gate = asyncio.Event()
    catalog = make_catalog([source], database, FakeClock())
    impatient = asyncio.create_task(catalog.view())
    patient = asyncio.create_task(catalog.view())
    await asyncio.sleep(0)
    impatient.cancel()
    source.gate.set()
    view = await patient
    assert len(view.all) == 1 and source.calls == 1


async def test_refresh_with_an_unchanged_list_keeps_views_cheap(
    database: Database, make_catalog: MakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    source = ScriptedSource("openrouter", [model("openrouter", f"m{i}") for i in range(50)])
    catalog = make_catalog([source], database, clock)
    first = await catalog.view()
    comparisons = 0
    compare = ModelInfo.__eq__

    def counting_eq(self: ModelInfo, other: object) -> bool:
        nonlocal comparisons
        comparisons += 1
        return compare(self, other)

    monkeypatch.setattr(ModelInfo, "__eq__", counting_eq)

    # The upstream answers the same list again, parsed into new objects as a real one is.
    source.models = [replace(m) for m in source.models]
    clock.advance(TTL + 1)
    await expired_view_then_refreshed(catalog)
    refreshed = await catalog.view()
    assert source.calls == 2
    assert refreshed.index is first.index  # same models: the index is not rebuilt
    comparisons = 0

    for _ in range(10):
        view = await catalog.view()
        assert view.cached and view.index is first.index

    assert comparisons == 0


# --- in the background: nothing waits for a refresh ----------------------------------

QUICK = 1.0  # a generous sanity bound for "at once"


class CrashingSource(ScriptedSource):
    """Raises something that is not a provider error (a bug) on its first `crashes` calls."""

    crashes = 1

    async def list_models(self) -> list[ModelInfo]:
        if self.calls < self.crashes:
            self.calls += 1
            raise RuntimeError("bug in a parser")
        return await super().list_models()


async def test_cold_start_answers_with_what_is_there_after_a_short_wait(
    database: Database, make_catalog: MakeCatalog
) -> None:
    hanging, fine = ScriptedSource("huggingface"), ScriptedSource("openrouter")
    hanging.gate = asyncio.Event()  # never set: its /models never answers
    catalog = make_catalog([fine, hanging], database, FakeClock(), cold_wait=0.05)

    async with asyncio.timeout(QUICK):
        view = await catalog.view()
        # A query about the provider whose list is in waits for nothing else.
        only = await catalog.view(catalog.providers_named(["openrouter:openrouter-model"]))

    assert [m.id for m in view.all] == ["openrouter:openrouter-model"]
    assert {p.provider: p.status for p in view.providers} == {
        "openrouter": "ok",
        "huggingface": "loading",
    }
    assert view.cached and only.index.get("openrouter:openrouter-model") is not None


async def test_a_hanging_round_ends_at_its_bound_as_an_error(
    database: Database, make_catalog: MakeCatalog
) -> None:
    hanging = ScriptedSource("huggingface")
    hanging.gate = asyncio.Event()
    catalog = make_catalog([hanging], database, FakeClock(), round_timeout=0.05, cold_wait=0)
    await catalog.settled()
    (status,) = (await catalog.view()).providers
    assert (status.status, status.error) == ("error", "no model list within 0.05s")
    assert (await catalog.view()).fetched_at is None
    assert not (await catalog.view()).cached  # nothing was ever fetched


async def test_an_expired_list_is_served_at_once_while_its_refresh_hangs(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock = FakeClock()
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, clock)
    await catalog.view()
    source.gate = asyncio.Event()
    clock.advance(TTL + 1)
    await catalog.view()  # wakes the refresh, which hangs
    await source.wait_for_calls(2)

    async with asyncio.timeout(QUICK):
        for _ in range(5):
            view = await catalog.view()
            assert [m.upstream_id for m in view.all] == ["openrouter-model"]
            assert view.stale and view.cached

    assert source.calls == 2  # one refresh under way, not one per query
    source.gate.set()
    await catalog.settled()
    assert not (await catalog.view()).stale


async def test_the_list_is_fetched_again_before_it_expires(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock, sleep = FakeClock(), ManualSleep()
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, clock, sleep=sleep)
    await sleep.wait_for_calls(1)
    assert sleep.delays == [TTL - ROUND]

    clock.advance(TTL - ROUND)
    source.models = [model("openrouter", "new-model")]
    sleep.release()  # the task's own timer, no query involved
    await sleep.wait_for_calls(2)

    view = await catalog.view()
    assert source.calls == 2
    assert [m.upstream_id for m in view.all] == ["new-model"] and not view.stale
    assert sleep.delays[1] == TTL - ROUND


async def test_a_failed_round_is_retried_after_the_retry_delay_by_its_timer(
    database: Database, make_catalog: MakeCatalog
) -> None:
    clock, sleep = FakeClock(), ManualSleep()
    source = ScriptedSource("openrouter")
    source.break_with_503()
    make_catalog([source], database, clock, sleep=sleep)
    await sleep.wait_for_calls(1)
    assert sleep.delays == [60]
    assert source.calls == 1


async def test_a_crashed_task_is_logged_and_starts_again(
    database: Database, make_catalog: MakeCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    clock, sleep = FakeClock(), ManualSleep()
    source = CrashingSource("openrouter")
    catalog = make_catalog([source], database, clock, sleep=sleep)
    await sleep.wait_for_calls(1)

    (status,) = (await catalog.view()).providers
    assert (status.status, status.error) == ("error", "internal error while refreshing")
    assert "catalog task of openrouter crashed" in caplog.text
    assert "bug in a parser" in caplog.text  # the traceback is in the log, not the API

    sleep.release()
    await sleep.wait_for_calls(2)
    view = await catalog.view()
    assert [m.upstream_id for m in view.all] == ["openrouter-model"]
    assert view.providers[0].status == "ok" and source.calls == 2


async def test_a_task_that_keeps_crashing_backs_off_up_to_the_retry_delay(
    database: Database, make_catalog: MakeCatalog
) -> None:
    sleep = ManualSleep()
    source = CrashingSource("openrouter")
    source.crashes = 10
    make_catalog([source], database, FakeClock(), sleep=sleep)
    for calls in range(1, 10):
        await sleep.wait_for_calls(calls)
        sleep.release()
    assert sleep.delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


async def test_refresh_waits_for_the_upstream_but_at_most_one_round(
    database: Database, make_catalog: MakeCatalog
) -> None:
    source = ScriptedSource("openrouter")
    catalog = make_catalog([source], database, FakeClock(), round_timeout=0.05)
    await catalog.view()
    source.gate = asyncio.Event()
    async with asyncio.timeout(QUICK):
        view = await catalog.refresh()
    assert source.calls == 2
    assert view.cached and [m.upstream_id for m in view.all] == ["openrouter-model"]


async def test_close_cancels_a_fetch_under_way(database: Database) -> None:
    source = ScriptedSource("openrouter")
    source.gate = asyncio.Event()
    catalog = Catalog(
        [source], store=CatalogStore(database), ttl_seconds=TTL, retry_seconds=60, cold_wait=0
    )
    catalog.start()
    await source.wait_for_calls(1)
    async with asyncio.timeout(QUICK):
        await catalog.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "catalog-openrouter"]
