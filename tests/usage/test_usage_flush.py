"""A flush of a big batch shares the event loop: the requests waiting meanwhile run
between its slices of work, and every record is still written once, in order, and
counted once in the totals."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest_asyncio

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.registry import document_models
from resolvers.usage.recorder import UsageEntry, UsageRecorder
from resolvers.usage.totals import SLICE
from tests.usage.test_usage_totals import (
    USERS,
    assert_totals_match_records,
    backfill,
    random_entry,
    totals_docs,
)

BATCH = 200


class Watched(Database):
    """The real database, which notes when a write starts and when its answer is in,
    and can be made unreachable."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.events: list[str] = []
        self.down = False

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        self.events.append("write")
        if self.down:
            raise DatabaseUnavailable()
        async with super().guard():
            yield
        self.events.append("answered")


@pytest_asyncio.fixture
async def watched(mongo_uri: str, clean_db: str) -> AsyncIterator[Watched]:
    db = Watched(mongo_uri, db_name=clean_db, document_models=document_models())
    await db.start()
    yield db
    await db.close()


async def recording(database: Watched, waiting: list[UsageEntry]) -> UsageRecorder:
    """A recorder with `waiting` recorded, on a database with nothing older (the
    totals hold every record)."""
    await backfill(database)
    database.events.clear()
    recorder = UsageRecorder(database, batch_size=BATCH)
    for e in waiting:
        recorder.record(e)
    return recorder


def entries(count: int, start: int = 0, seed: int = 7) -> list[UsageEntry]:
    rng = random.Random(seed)
    return [random_entry(rng, n) for n in range(start, start + count)]


async def beside(
    flush: asyncio.Task[int], database: Watched, on_turn: Callable[[int], None] = lambda _: None
) -> int:
    """Another task, as a request waiting on the loop: it notes each turn it gets while
    `flush` runs and calls `on_turn` with the turn's number. Returns the flush's result."""
    await asyncio.sleep(0)  # the flush starts first
    turn = 0
    while not flush.done():
        turn += 1
        database.events.append("turn")
        on_turn(turn)
        await asyncio.sleep(0)
    return flush.result()


def turns_before(events: list[str], mark: str, after: str | None = None) -> int:
    """The other task's turns before the first `mark` (after the first `after`)."""
    start = 0 if after is None else events.index(after) + 1
    return events[start : events.index(mark, start)].count("turn")


async def stored_ids(database: Database) -> list[str]:
    """In the order recorded (the ids given one after another grow)."""
    cursor = database.db["usage_records"].find({}, {"requestId": 1}).sort("_id", 1)
    return [doc["requestId"] async for doc in cursor]


async def assert_each_counted_once(database: Database, request_ids: list[str]) -> None:
    assert await stored_ids(database) == request_ids
    assert sum(t["requests"] for t in await totals_docs(database)) == len(request_ids)
    await assert_totals_match_records(database, USERS)


async def test_a_big_flush_lets_waiting_requests_run_while_it_prepares_its_writes(
    watched: Watched,
) -> None:
    """It built, encoded and summed the 200 records, then the 200 totals updates, each
    in one go: 1.5 ms of the loop at a time that every request waiting meanwhile
    waited out (issue #13's p99)."""
    # One user each: a totals update per record.
    each_alone = [replace(e, user_id=f"user-{n}") for n, e in enumerate(entries(BATCH))]
    recorder = await recording(watched, each_alone)

    flush = asyncio.create_task(recorder.flush())
    assert await beside(flush, watched) == BATCH

    assert watched.events.count("write") == 2  # the records, then their totals
    # The other task ran between the slices of each batch's preparation, not only
    # while the database worked.
    assert turns_before(watched.events, "write") >= BATCH // SLICE - 1
    assert turns_before(watched.events, "write", after="answered") >= BATCH // SLICE - 1
    assert sum(t["requests"] for t in await totals_docs(watched)) == BATCH


async def test_records_arriving_while_a_batch_is_prepared_wait_for_the_next_one(
    watched: Watched,
) -> None:
    first, later = entries(BATCH), entries(50, start=BATCH)
    arriving = iter(later)
    recorder = await recording(watched, first)

    def request_done(turn: int) -> None:
        if "write" not in watched.events:
            recorder.record(next(arriving))

    flush = asyncio.create_task(recorder.flush(drain=False))
    assert await beside(flush, watched, request_done) == BATCH
    came = watched.events[: watched.events.index("write")].count("turn")
    assert came > 0
    assert recorder.pending == came
    assert await stored_ids(watched) == [e.request_id for e in first]

    assert await recorder.flush() == came
    await assert_each_counted_once(watched, [e.request_id for e in (first + later)[: BATCH + came]])


async def test_an_outage_while_a_batch_is_prepared_keeps_it_ahead_of_later_records(
    watched: Watched,
) -> None:
    first, later = entries(BATCH), entries(10, start=BATCH)
    recorder = await recording(watched, first)

    def during(turn: int) -> None:
        if turn == 2:
            watched.down = True
            for e in later:
                recorder.record(e)

    flush = asyncio.create_task(recorder.flush())
    assert await beside(flush, watched, during) == 0
    assert recorder.pending == BATCH + len(later)

    watched.down = False
    assert await recorder.flush() == BATCH + len(later)
    await assert_each_counted_once(watched, [e.request_id for e in first + later])


async def test_a_flush_cancelled_while_it_prepares_a_batch_loses_nothing(
    watched: Watched,
) -> None:
    first = entries(BATCH)
    recorder = await recording(watched, first)
    flush = asyncio.create_task(recorder.flush())

    def cancel(turn: int) -> None:
        if turn == 2:
            flush.cancel()

    with contextlib.suppress(asyncio.CancelledError):
        await beside(flush, watched, cancel)
    assert flush.cancelled()
    assert "write" not in watched.events  # stopped before the insert
    assert recorder.pending == BATCH

    assert await recorder.flush() == BATCH
    await assert_each_counted_once(watched, [e.request_id for e in first])


async def test_records_the_database_refuses_are_left_out_of_the_totals(
    watched: Watched,
) -> None:
    wanted = entries(3)
    await watched.db.command(
        "collMod",
        "usage_records",
        validator={"$jsonSchema": {"properties": {"requestId": {"not": {"enum": ["r1"]}}}}},
    )
    recorder = await recording(watched, wanted)
    assert await recorder.flush() == 2
    assert recorder.rejected == 1
    kept = [wanted[0], wanted[2]]
    await assert_each_counted_once(watched, [e.request_id for e in kept])
