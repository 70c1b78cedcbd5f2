"""The usage report from per-day totals: the same answers as from the records, every
record counted once (lost answers, two processes), the start-up backfill of older
records (once, with two starters; stopped at once), on the embedded MongoDB."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bson import ObjectId
from starlette.requests import Request

from aipasta.app import create_app
from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.registry import document_models
from documents.usage import UsageRecord
from providers.chat import TokenUsage
from resolvers.context import Context
from resolvers.identity.identity import Identity
from resolvers.usage.recorder import UsageEntry, UsageRecorder, _document
from resolvers.usage.report import report, usage_groups
from resolvers.usage.totals import Sums, TotalsBackfill, utc_day
from schema.types.enums import MessageStatus, UsageGroupBy
from tests.conftest import make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import StartApp, serve
from tests.usage.test_usage_report import SCHEMA, services

WAIT = 10.0  # bound on every wait for background work; never reached when it works
DAY0 = datetime(2025, 3, 1, tzinfo=UTC)
DAYS = 6
USERS = ("alice", "bob", "carol")
MODELS = (
    "openrouter:deepseek/deepseek-chat",
    "openrouter:anthropic/claude-3.5-sonnet",
    "huggingface:meta-llama/Llama-3.1-8B-Instruct",
    "huggingface:Qwen/Qwen2.5-72B-Instruct",
)
STATUSES = ("complete", "partial", "failed", "cancelled")


def random_entry(rng: random.Random, n: int) -> UsageEntry:
    model = rng.choice(MODELS)
    status = rng.choice(STATUSES)
    prompt, completion = rng.randrange(5000), rng.randrange(3000)
    # A few records on the stroke of midnight, where days meet.
    at = DAY0 + timedelta(days=rng.randrange(DAYS))
    if rng.random() > 0.05:
        at += timedelta(milliseconds=rng.randrange(86_400_000))
    return UsageEntry(
        user_id=rng.choice(USERS),
        request_id=f"r{n}",
        model=model,
        provider=model.partition(":")[0],
        usage=TokenUsage(
            prompt,
            completion,
            prompt + completion,
            reasoning_tokens=rng.randrange(completion + 1),
            cached_prompt_tokens=rng.randrange(prompt + 1),
            cache_write_tokens=rng.randrange(100),
        ),
        cost=Decimal(rng.randrange(10**7)).scaleb(-rng.randrange(4, 12)),
        cost_known=True,
        latency_ms=rng.randrange(1, 100_000) / 8,
        time_to_first_token_ms=None if rng.random() < 0.3 else rng.randrange(1, 4000) / 4,
        status=MessageStatus.PARTIAL if status == "cancelled" else MessageStatus(status.upper()),
        cancelled=status == "cancelled",
        error_code="PROVIDER_ERROR" if status == "failed" else None,
        created_at=at,
    )


def old_document(entry: UsageEntry) -> dict[str, Any]:
    """A record as a version before the totals (and the new token kinds) stored it."""
    document = _document(ObjectId(), entry)
    for field in ("totalled", "reasoningTokens", "cachedPromptTokens", "cacheWriteTokens"):
        del document[field]
    return document


def expected_groups(
    entries: list[UsageEntry],
    user: str,
    since: datetime | None,
    until: datetime | None,
    group_by: UsageGroupBy,
    *,
    new_kinds: set[str],
) -> dict[str, Sums]:
    """What the report must say, from the entries themselves. Old records (request id
    not in `new_kinds`) never stored the new token kinds."""
    groups: dict[str, Sums] = {}
    for e in entries:
        at = e.created_at.replace(microsecond=e.created_at.microsecond // 1000 * 1000)
        if e.user_id != user or (since and at < since) or (until and at >= until):
            continue
        key = {
            UsageGroupBy.DAY: utc_day(at).strftime("%Y-%m-%d"),
            UsageGroupBy.MODEL: e.model,
            UsageGroupBy.PROVIDER: e.provider,
        }[group_by]
        sums = groups.setdefault(key, Sums())
        document = _document(ObjectId(), e)
        if e.request_id not in new_kinds:
            for field in ("reasoningTokens", "cachedPromptTokens", "cacheWriteTokens"):
                del document[field]
        sums.add_record(document)
    return groups


def assert_same(actual: dict[str, Sums], expected: dict[str, Sums], why: object) -> None:
    assert sorted(actual) == sorted(expected), why
    for key, sums in expected.items():
        got = actual[key]
        for name in ("latencyMsSum", "timeToFirstTokenMsSum"):
            # Float sums in another order: equal to the last few bits.
            assert math.isclose(getattr(got, name), getattr(sums, name), rel_tol=1e-12), why
        assert replace(got, latencyMsSum=0, timeToFirstTokenMsSum=0) == replace(
            sums, latencyMsSum=0, timeToFirstTokenMsSum=0
        ), (why, key)


async def totals_docs(database: Database) -> list[dict[str, Any]]:
    return await database.db["usage_totals"].find({}, {"batches": 0}).to_list()


def random_range(rng: random.Random) -> tuple[datetime | None, datetime | None]:
    def moment() -> datetime | None:
        kind = rng.randrange(4)
        if kind == 0:
            return None
        day = DAY0 + timedelta(days=rng.randrange(-1, DAYS + 1))
        if kind == 1:
            return day  # midnight: whole days only
        return day + timedelta(milliseconds=rng.randrange(86_400_000))

    since, until = moment(), moment()
    if since is not None and until is not None and since > until:
        since, until = until, since
    return since, until


@pytest_asyncio.fixture
async def second_database(mongo_uri: str, clean_db: str) -> AsyncIterator[Database]:
    """Another client on the same database: another gateway process."""
    db = Database(mongo_uri, db_name=clean_db, document_models=document_models())
    await db.start()
    yield db
    await db.close()


async def backfill(database: Database) -> TotalsBackfill:
    job = TotalsBackfill(database, page_size=97, retry_seconds=0.01)
    await job.start()
    await asyncio.wait_for(job.done.wait(), WAIT)
    await job.close()
    return job


async def test_the_report_from_totals_equals_the_report_from_the_records(
    database: Database,
) -> None:
    rng = random.Random(1313)
    entries = [random_entry(rng, n) for n in range(1500)]
    # A third stored by an older version, before the totals; the rest flushed in
    # batches of every size.
    old, new = entries[:500], entries[500:]
    await database.db["usage_records"].insert_many([old_document(e) for e in old])
    recorder = UsageRecorder(database, batch_size=37)
    for e in new[:600]:
        recorder.record(e)
    assert await recorder.flush() == 600
    await backfill(database)
    for e in new[600:]:
        recorder.record(e)
        if rng.random() < 0.02:
            await recorder.flush()
    await recorder.flush()
    assert recorder.totals_pending == 0
    new_kinds = {e.request_id for e in new}

    for n in range(150):
        since, until = random_range(rng)
        user = rng.choice(USERS)
        group_by = rng.choice(list(UsageGroupBy))
        why = (n, user, since, until, group_by)
        expected = expected_groups(entries, user, since, until, group_by, new_kinds=new_kinds)
        from_totals = await usage_groups(database, user, since, until, group_by)
        from_records = await usage_groups(database, user, since, until, group_by, use_totals=False)
        assert_same(from_totals, expected, why)
        assert_same(from_records, expected, why)
        # The same rows, in the same order, as the API shows them.
        a, b = report(from_totals, group_by), report(from_records, group_by)
        assert [r.key for r in a.rows] == [r.key for r in b.rows], why
        assert (a.total_requests, a.total_cost) == (b.total_requests, b.total_cost), why
    # A few hundred totals stand for the 1,500 records.
    assert len(await totals_docs(database)) <= len(USERS) * DAYS * len(MODELS) * 2


async def test_the_report_reads_the_records_until_the_backfill_is_done(
    database: Database,
) -> None:
    rng = random.Random(5)
    entries = [random_entry(rng, n) for n in range(50)]
    recorder = UsageRecorder(database)
    for e in entries:
        recorder.record(e)
    await recorder.flush()
    # A record that reached the collection without the totals (as a record an older
    # version wrote would, if it were marked): only the records show it.
    stray = replace(entries[0], request_id="stray", user_id="dave")
    await database.db["usage_records"].insert_one(_document(ObjectId(), stray))
    whole = {"since": None, "until": None, "group_by": UsageGroupBy.MODEL}
    assert await usage_groups(database, "dave", **whole)  # type: ignore[arg-type]

    await backfill(database)
    # Now the totals answer, and they have only what was flushed or backfilled.
    assert await usage_groups(database, "dave", **whole) == {}  # type: ignore[arg-type]
    for user in USERS:
        assert_same(
            await usage_groups(database, user, **whole),  # type: ignore[arg-type]
            await usage_groups(database, user, **whole, use_totals=False),  # type: ignore[arg-type]
            user,
        )


class LosingDatabase(Database):
    """The real database, which can lose the answer of chosen writes after the server
    did them (the connection dropping right after), or be away."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.lose: set[int] = set()
        # Away from this call on (None: never).
        self.away_from: int | None = None

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        if self.away_from is not None and self.calls + 1 >= self.away_from:
            raise DatabaseUnavailable()
        self.calls += 1
        call = self.calls
        async with super().guard():
            yield
        if call in self.lose:
            raise DatabaseUnavailable()


@pytest_asyncio.fixture
async def losing(mongo_uri: str, clean_db: str) -> AsyncIterator[LosingDatabase]:
    db = LosingDatabase(mongo_uri, db_name=clean_db, document_models=document_models())
    await db.start()
    yield db
    await db.close()


async def flushed_until_done(recorder: UsageRecorder) -> None:
    for _ in range(20):
        await recorder.flush()
        if not recorder.pending and not recorder.totals_pending:
            return
    raise AssertionError("the recorder never caught up")


async def assert_totals_match_records(database: Database, users: tuple[str, ...]) -> None:
    for user in users:
        for group_by in UsageGroupBy:
            args = (database, user, None, None, group_by)
            totals = await usage_groups(*args, use_totals=True)
            assert_same(totals, await usage_groups(*args, use_totals=False), (user, group_by))


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param({1}, id="insert-answer-lost"),
        pytest.param({2}, id="totals-answer-lost"),
        pytest.param({1, 2, 3, 4}, id="both-lost-twice"),
    ],
)
async def test_a_flush_whose_answer_was_lost_counts_each_record_once(
    losing: LosingDatabase, lost: set[int]
) -> None:
    rng = random.Random(11)
    entries = [random_entry(rng, n) for n in range(120)]
    await backfill(losing)  # nothing older: the report reads the totals from now on
    recorder = UsageRecorder(losing, batch_size=200)
    for e in entries:
        recorder.record(e)
    losing.calls, losing.lose = 0, lost
    await flushed_until_done(recorder)

    assert await losing.db["usage_records"].count_documents({}) == 120
    totals = await totals_docs(losing)
    assert sum(t["requests"] for t in totals) == 120
    await assert_totals_match_records(losing, USERS)


async def test_totals_written_after_an_outage_between_the_two_writes(
    losing: LosingDatabase,
) -> None:
    rng = random.Random(12)
    await backfill(losing)
    recorder = UsageRecorder(losing)
    for n in range(30):
        recorder.record(random_entry(rng, n))

    # The records are stored; then the database goes away before their totals.
    losing.calls, losing.away_from = 0, 2
    await recorder.flush()
    assert (recorder.pending, recorder.totals_pending) == (0, 1)
    assert await losing.db["usage_records"].count_documents({}) == 30

    losing.away_from = None
    await recorder.flush()
    assert recorder.totals_pending == 0
    assert sum(t["requests"] for t in await totals_docs(losing)) == 30
    await assert_totals_match_records(losing, USERS)


async def test_two_processes_flushing_the_same_days_add_up(
    database: Database, second_database: Database
) -> None:
    rng = random.Random(13)
    entries = [random_entry(rng, n) for n in range(800)]
    await backfill(database)
    one, two = UsageRecorder(database, batch_size=20), UsageRecorder(second_database, batch_size=20)
    for n, e in enumerate(entries):
        (one if n % 2 else two).record(e)
    await asyncio.gather(one.flush(), two.flush())

    totals = await totals_docs(database)
    # One total per user, day and model however many processes add to it.
    keys = [(t["userId"], t["day"], t["model"], t["provider"]) for t in totals]
    assert len(keys) == len(set(keys))
    assert sum(t["requests"] for t in totals) == 800
    await assert_totals_match_records(database, USERS)


async def test_old_records_load_with_the_new_token_kinds_at_zero(database: Database) -> None:
    entry = random_entry(random.Random(3), 0)
    await database.db["usage_records"].insert_one(old_document(entry))
    record = await UsageRecord.find_one()
    assert record is not None
    assert (record.reasoningTokens, record.cachedPromptTokens, record.cacheWriteTokens) == (0, 0, 0)
    assert record.totalled is False
    assert record.promptTokens == entry.usage.prompt_tokens


async def test_the_report_sums_the_new_token_kinds(tmp_path: Path, database: Database) -> None:
    def used(n: int, reasoning: int, cached: int, written: int) -> UsageEntry:
        return UsageEntry(
            user_id="alice",
            request_id=f"r{n}",
            model=MODELS[0],
            provider="openrouter",
            usage=TokenUsage(
                100,
                50,
                150,
                reasoning_tokens=reasoning,
                cached_prompt_tokens=cached,
                cache_write_tokens=written,
            ),
            cost=Decimal("0.001"),
            cost_known=True,
            latency_ms=10,
            status=MessageStatus.COMPLETE,
            created_at=DAY0 + timedelta(hours=n),
        )

    recorder = UsageRecorder(database)
    recorder.record(used(1, 20, 80, 0))
    recorder.record(used(2, 5, 0, 64))
    await recorder.flush()
    context = Context(
        services=services(tmp_path, database),
        request=Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)}),
        response=None,
        request_id="req-usage",
        identity=Identity("alice"),
    )
    query = "{ usage { rows { key reasoningTokens cachedPromptTokens cacheWriteTokens } } }"

    async def rows() -> Any:
        answer = await SCHEMA.execute(query, context_value=context)
        assert not answer.errors, answer.errors
        return answer.data["usage"]["rows"]  # type: ignore[index]

    expected = [
        {"key": MODELS[0], "reasoningTokens": 25, "cachedPromptTokens": 80, "cacheWriteTokens": 64}
    ]
    assert await rows() == expected  # from the records
    await backfill(database)
    assert await rows() == expected  # from the totals


async def fill_old(database: Database, count: int, seed: int = 21) -> list[UsageEntry]:
    rng = random.Random(seed)
    entries = [random_entry(rng, n) for n in range(count)]
    await database.db["usage_records"].insert_many([old_document(e) for e in entries])
    return entries


async def test_the_backfill_counts_older_records_like_the_flush_would(
    database: Database,
) -> None:
    entries = await fill_old(database, 700)
    job = await backfill(database)
    assert job.scanned == 700
    state = await database.db["usage_totals_state"].find_one({"name": "backfill"})
    assert state is not None and state["state"] == "done"
    assert sum(t["requests"] for t in await totals_docs(database)) == 700
    await assert_totals_match_records(database, USERS)
    for user in USERS:
        expected = expected_groups(entries, user, None, None, UsageGroupBy.DAY, new_kinds=set())
        assert_same(
            await usage_groups(database, user, None, None, UsageGroupBy.DAY), expected, user
        )

    # Started again (the next start of the gateway): nothing is counted twice.
    again = await backfill(database)
    assert again.scanned == 0
    assert sum(t["requests"] for t in await totals_docs(database)) == 700


async def test_two_processes_starting_together_backfill_once(
    database: Database, second_database: Database
) -> None:
    await fill_old(database, 900)
    one = TotalsBackfill(database, page_size=50, retry_seconds=0.01)
    two = TotalsBackfill(second_database, page_size=50, retry_seconds=0.01)
    await asyncio.gather(one.start(), two.start())
    await asyncio.wait_for(asyncio.gather(one.done.wait(), two.done.wait()), WAIT)
    await asyncio.gather(one.close(), two.close())

    assert sorted([one.scanned, two.scanned]) == [0, 900]
    assert sum(t["requests"] for t in await totals_docs(database)) == 900
    await assert_totals_match_records(database, USERS)


class StallingBackfill(TotalsBackfill):
    """A backfill that stalls after its first page, as one over millions of records
    would still be scanning."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stalled = asyncio.Event()

    async def _page_done(self) -> None:
        self.stalled.set()
        await asyncio.Event().wait()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_backfill_stopped_mid_way_stops_at_once_and_the_next_start_finishes_it(
    database: Database, second_database: Database
) -> None:
    await fill_old(database, 400)
    clock = Clock()
    first = StallingBackfill(database, page_size=50, retry_seconds=0.01, clock=clock)
    await first.start()
    await asyncio.wait_for(first.stalled.wait(), WAIT)
    # Shutdown: the scan is cancelled, not waited for (bounded well below the 1 s limit
    # the lifespan gives it only so that a hang fails here rather than in a timeout).
    await asyncio.wait_for(first.close(), 2)
    assert not first.done.is_set()
    # Unfinished: the report still reads the records.
    state = await database.db["usage_totals_state"].find_one({"name": "backfill"})
    assert state is not None and state["state"] == "running"

    # The next start, within the first one's lease, waits for it ...
    second = TotalsBackfill(second_database, page_size=50, retry_seconds=0.01, clock=clock)
    await second.start()
    await asyncio.sleep(0)
    assert not second.done.is_set()
    # ... and takes over once the lease has run out, counting each record once.
    clock.now += timedelta(seconds=31)
    await asyncio.wait_for(second.done.wait(), WAIT)
    await second.close()
    assert second.scanned == 400
    assert sum(t["requests"] for t in await totals_docs(database)) == 400
    await assert_totals_match_records(database, USERS)


async def test_the_gateway_backfills_at_start_up(
    start_app: StartApp, mongo_uri: str, clean_db: str
) -> None:
    seed = Database(mongo_uri, db_name=clean_db, document_models=document_models())
    await seed.start()
    try:
        # Older records of the local user (AIPASTA_AUTH=off acts as "local").
        entries = [replace(e, user_id="local") for e in await fill_old(seed, 60)]
        await seed.db["usage_records"].delete_many({})
        await seed.db["usage_records"].insert_many([old_document(e) for e in entries])
        app = await start_app()

        async def backfilled() -> bool:
            state = await seed.db["usage_totals_state"].find_one({"name": "backfill"})
            return state is not None and state["state"] == "done"

        async def poll() -> None:
            while not await backfilled():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), WAIT)
        assert sum(t["requests"] for t in await totals_docs(seed)) == 60
        body = await app.graphql("{ usage(groupBy: DAY) { totalRequests rows { requests } } }")
        assert "errors" not in body, body
        assert body["data"]["usage"]["totalRequests"] == 60
    finally:
        await seed.close()


async def test_the_gateway_stops_at_once_during_the_backfill(
    tmp_path: Path,
    mongo_uri: str,
    clean_db: str,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = Database(mongo_uri, db_name=clean_db, document_models=document_models())
    await seed.start()
    stalled = asyncio.Event()

    async def stall(self: TotalsBackfill) -> None:
        # As a backfill over millions of records would still be reading them.
        stalled.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(TotalsBackfill, "_page_done", stall)
    try:
        await fill_old(seed, 2500)
        settings = make_settings(
            tmp_path,
            MONGODB_URI=mongo_uri,
            AIPASTA_DB_NAME=clean_db,
            OPENROUTER_BASE_URL=upstream.url("openrouter"),
            HUGGINGFACE_BASE_URL=upstream.url("hf"),
            AIPASTA_AUTH="off",
        )
        async with serve(create_app(settings)) as app:
            await asyncio.wait_for(stalled.wait(), WAIT)
            body = await app.graphql("{ usage { totalRequests } }")
            assert body["data"]["usage"]["totalRequests"] == 0  # "local" has none; no wait
            # Leaving the block is the lifespan's shutdown.
        state = await seed.db["usage_totals_state"].find_one({"name": "backfill"})
        assert state is not None and state["state"] == "running"  # the next start goes on
    finally:
        await seed.close()


async def test_a_total_the_database_refuses_does_not_hold_up_later_batches(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(14)
    first = replace(random_entry(rng, 0), user_id="alice")
    # A total that no $inc can add to (as a corrupted document would be).
    await database.db["usage_totals"].insert_one(
        {
            "userId": "alice",
            "day": utc_day(first.created_at),
            "model": first.model,
            "provider": first.provider,
            "source": "live",
            "requests": "many",
        }
    )
    recorder = UsageRecorder(database)
    recorder.record(first)
    assert await recorder.flush() == 1
    assert recorder.totals_pending == 0
    assert "usage totals refused" in caplog.text

    later = replace(random_entry(rng, 1), user_id="bob")
    recorder.record(later)
    assert await recorder.flush() == 1
    (bob,) = await database.db["usage_totals"].find({"userId": "bob"}).to_list()
    assert bob["requests"] == 1
