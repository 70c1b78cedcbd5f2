"""The usage recorder against the embedded MongoDB: batching, shutdown, outages, bounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from bson import Decimal128

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.registry import document_models
from providers.chat import TokenUsage
from resolvers.usage.recorder import UsageEntry, UsageRecorder
from schema.types.enums import MessageStatus

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WAIT = 10.0  # bound on every wait for the background writer; never reached when it works


def entry(n: int, *, estimated: bool = False, **fields: Any) -> UsageEntry:
    values: dict[str, Any] = {
        "user_id": "alice",
        "request_id": f"r{n}",
        "model": "openrouter:deepseek/deepseek-chat",
        "provider": "openrouter",
        "usage": TokenUsage(10, 5, 15, estimated=estimated),
        "cost": Decimal("0.00000082"),
        "cost_known": True,
        "latency_ms": 120.5,
        "status": MessageStatus.COMPLETE,
        "created_at": T0 + timedelta(seconds=n),
    }
    values.update(fields)
    return UsageEntry(**values)


async def stored_request_ids(database: Database) -> list[str]:
    cursor = database.db["usage_records"].find({}, {"requestId": 1}).sort("createdAt", 1)
    return [doc["requestId"] async for doc in cursor]


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT)


class FlakyDatabase(Database):
    """The real database, which can be made unreachable, or lose the answer of a write
    that the server did store (as when the connection drops right after it)."""

    down = False
    lose_answers = 0

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        if self.down:
            raise DatabaseUnavailable()
        async with super().guard():
            yield
        if self.lose_answers:
            self.lose_answers -= 1
            raise DatabaseUnavailable()


@pytest_asyncio.fixture
async def flaky(mongo_uri: str, clean_db: str) -> AsyncIterator[FlakyDatabase]:
    db = FlakyDatabase(mongo_uri, db_name=clean_db, document_models=document_models())
    await db.start()
    yield db
    await db.close()


async def test_a_record_is_written_whole_at_flush_time(database: Database) -> None:
    recorder = UsageRecorder(database)
    recorder.record(
        entry(
            1,
            usage=TokenUsage(
                10,
                5,
                15,
                estimated=True,
                reasoning_tokens=3,
                cached_prompt_tokens=6,
                cache_write_tokens=2,
            ),
            time_to_first_token_ms=33.25,
            status=MessageStatus.FAILED,
            error_code="PROVIDER_TIMEOUT",
        )
    )
    assert await database.db["usage_records"].count_documents({}) == 0
    assert recorder.pending == 1

    assert await recorder.flush() == 1
    assert recorder.pending == 0
    stored = await database.db["usage_records"].find_one({}, {"_id": 0})
    assert stored == {
        "userId": "alice",
        "requestId": "r1",
        "model": "openrouter:deepseek/deepseek-chat",
        "provider": "openrouter",
        "promptTokens": 10,
        "completionTokens": 5,
        "totalTokens": 15,
        "estimated": True,
        "reasoningTokens": 3,
        "cachedPromptTokens": 6,
        "cacheWriteTokens": 2,
        "cost": Decimal128("0.00000082"),
        "costKnown": True,
        "latencyMs": 120.5,
        "timeToFirstTokenMs": 33.25,
        "status": "failed",
        "errorCode": "PROVIDER_TIMEOUT",
        "createdAt": T0 + timedelta(seconds=1),
        "totalled": True,
    }


async def test_a_cost_longer_than_decimal128_is_rounded_not_refused(database: Database) -> None:
    recorder = UsageRecorder(database)
    recorder.record(entry(1, cost=Decimal("0." + "3" * 40)))
    assert await recorder.flush() == 1
    stored = await database.db["usage_records"].find_one({})
    assert stored is not None
    assert stored["cost"] == Decimal128("0." + "3" * 34)


async def test_an_invalid_record_is_refused_without_holding_up_the_rest(
    database: Database,
) -> None:
    recorder = UsageRecorder(database)
    recorder.record(entry(0))
    recorder.record(entry(1, status="finished"))  # not a status
    recorder.record(entry(2))
    assert await recorder.flush() == 2
    assert (recorder.pending, recorder.rejected) == (0, 1)
    assert await stored_request_ids(database) == ["r0", "r2"]


async def test_a_full_batch_is_written_without_waiting_for_the_interval(
    database: Database,
) -> None:
    recorder = UsageRecorder(database, flush_interval=3600, batch_size=10)
    await recorder.start()
    try:
        for n in range(9):
            recorder.record(entry(n))
        for _ in range(20):  # let the writer run if it (wrongly) would
            await asyncio.sleep(0)
        assert await database.db["usage_records"].count_documents({}) == 0

        recorder.record(entry(9))
        await eventually(lambda: _count_is(database, 10))
        assert recorder.pending == 0
    finally:
        await recorder.close()


async def test_records_are_written_on_the_interval(database: Database) -> None:
    recorder = UsageRecorder(database, flush_interval=0.02, batch_size=200)
    await recorder.start()
    try:
        recorder.record(entry(1))
        await eventually(lambda: _count_is(database, 1))
    finally:
        await recorder.close()


async def test_close_writes_what_is_left(database: Database) -> None:
    recorder = UsageRecorder(database, flush_interval=3600, batch_size=200)
    await recorder.start()
    for n in range(5):
        recorder.record(entry(n))
    await recorder.close()
    assert recorder.pending == 0
    assert await stored_request_ids(database) == [f"r{n}" for n in range(5)]


async def test_ten_thousand_concurrent_records_are_each_written_once(
    database: Database,
) -> None:
    recorder = UsageRecorder(database, flush_interval=0.01, batch_size=200)
    await recorder.start()

    async def produce(worker: int) -> None:
        for i in range(250):
            recorder.record(entry(worker * 1000 + i, request_id=f"w{worker}-{i}"))
            if i % 10 == 0:
                await asyncio.sleep(0)

    async def flush_meanwhile() -> None:
        for _ in range(20):
            await recorder.flush()
            await asyncio.sleep(0)

    await asyncio.gather(*(produce(w) for w in range(40)), flush_meanwhile(), flush_meanwhile())
    await recorder.close()

    collection = database.db["usage_records"]
    assert await collection.count_documents({}) == 10_000
    assert len(await collection.distinct("requestId")) == 10_000
    assert (recorder.pending, recorder.dropped, recorder.rejected) == (0, 0, 0)


async def test_records_wait_out_an_outage_in_order(flaky: FlakyDatabase) -> None:
    recorder = UsageRecorder(flaky, batch_size=2)
    flaky.down = True
    for n in range(5):
        recorder.record(entry(n))
    assert await recorder.flush() == 0
    assert recorder.pending == 5

    flaky.down = False
    recorder.record(entry(5))
    assert await recorder.flush() == 6
    assert await stored_request_ids(flaky) == [f"r{n}" for n in range(6)]


async def test_the_background_writer_retries_after_an_outage(flaky: FlakyDatabase) -> None:
    recorder = UsageRecorder(flaky, flush_interval=0.02, batch_size=2)
    flaky.down = True
    await recorder.start()
    try:
        for n in range(7):
            recorder.record(entry(n))
        assert recorder.pending == 7
        flaky.down = False
        await eventually(lambda: _count_is(flaky, 7))
    finally:
        await recorder.close()
    assert recorder.pending == 0


async def test_a_write_whose_answer_was_lost_is_not_stored_twice(flaky: FlakyDatabase) -> None:
    recorder = UsageRecorder(flaky, batch_size=10)
    for n in range(3):
        recorder.record(entry(n))
    flaky.lose_answers = 1
    assert await recorder.flush() == 0  # stored, but the gateway could not know
    assert recorder.pending == 3
    assert await recorder.flush() == 3
    assert await stored_request_ids(flaky) == ["r0", "r1", "r2"]


async def test_a_full_buffer_drops_the_oldest_and_counts_them(
    flaky: FlakyDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="resolvers.usage.recorder")
    recorder = UsageRecorder(flaky, batch_size=2, max_buffer=5)
    flaky.down = True
    for n in range(8):
        recorder.record(entry(n))
    assert (recorder.pending, recorder.dropped) == (5, 3)
    assert "dropping the oldest" in caplog.text

    assert await recorder.flush() == 0  # a failed attempt loses nothing more
    assert (recorder.pending, recorder.dropped) == (5, 3)

    flaky.down = False
    assert await recorder.flush() == 5
    assert await stored_request_ids(flaky) == [f"r{n}" for n in range(3, 8)]
    assert "3 usage records were dropped" in caplog.text


async def test_close_does_not_hang_when_the_database_is_away(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = Database(
        "mongodb://127.0.0.1:9/?directConnection=true",
        db_name="nowhere",
        document_models=document_models(),
        connect_timeout_ms=200,
        operation_timeout_ms=200,
        retry_seconds=60,
    )
    await unreachable.start()
    assert not unreachable.available
    recorder = UsageRecorder(unreachable, flush_interval=0.02)
    await recorder.start()
    try:
        for n in range(3):
            recorder.record(entry(n))
        await asyncio.wait_for(recorder.close(), WAIT)
    finally:
        await unreachable.close()
    assert recorder.pending == 3
    assert "3 usage records were not written before shutdown" in caplog.text


async def test_without_a_database_records_are_dropped_and_counted() -> None:
    recorder = UsageRecorder(None)
    await recorder.start()
    recorder.record(entry(1))
    recorder.record(entry(2))
    assert (recorder.pending, recorder.dropped) == (0, 2)
    assert await recorder.flush() == 0
    await recorder.close()


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        UsageRecorder(None, batch_size=100, max_buffer=10)
    with pytest.raises(ValueError, match="flush_interval"):
        UsageRecorder(None, flush_interval=0)


async def _count_is(database: Database, expected: int) -> bool:
    return await database.db["usage_records"].count_documents({}) == expected


class RecordsWhileWriting(FlakyDatabase):
    """Each write of usage records lets `arriving` more records come in while it is in
    flight, as requests keep finishing during a flush at a modest rate."""

    recorder: UsageRecorder | None = None
    arriving = 0
    # How many more writes bring records (then none do).
    bursts = 1_000_000
    writes = 0
    next_n = 100

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        async with super().guard():
            yield
        self.writes += 1
        if self.recorder is not None and self.bursts > 0:
            self.bursts -= 1
            for _ in range(self.arriving):
                self.recorder.record(entry(self.next_n))
                self.next_n += 1


async def test_the_background_flush_leaves_records_that_arrive_meanwhile_for_the_next_one(
    mongo_uri: str, clean_db: str
) -> None:
    """It wrote them at once instead, a few at a time, each with a totals update: at
    160 chats a second, 35 flushes a second kept the embedded database at 45 % of a core."""
    database = RecordsWhileWriting(mongo_uri, db_name=clean_db, document_models=document_models())
    await database.start()
    try:
        recorder = UsageRecorder(database, flush_interval=3600, batch_size=200)
        database.recorder, database.arriving = recorder, 3
        for n in range(5):
            recorder.record(entry(n))

        await recorder.flush(drain=False)

        # One write of the records and one of their totals; the 6 that arrived wait.
        assert database.writes == 2
        assert recorder.pending == 6
        assert await stored_request_ids(database) == [f"r{n}" for n in range(5)]

        # A whole batch waiting is written at once, drain or not.
        database.arriving = 0
        for n in range(200, 400):
            recorder.record(entry(n))
        await recorder.flush(drain=False)
        assert recorder.pending == 0

        # close() still writes everything, records arriving meanwhile included.
        database.arriving, database.bursts = 2, 1
        recorder.record(entry(500))
        await recorder.close()
        assert recorder.pending == 0
        assert len(await stored_request_ids(database)) == 5 + 6 + 200 + 1 + 2
    finally:
        await database.close()
