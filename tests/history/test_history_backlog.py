"""The queue of history writes waiting for MongoDB: in order, bounded, never silent."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from documents.database import Database
from documents.errors import DatabaseUnavailable
from resolvers.history.backlog import HistoryBacklog


async def test_past_the_bound_the_oldest_writes_are_dropped_counted_and_logged(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    made: list[int] = []
    backlog = HistoryBacklog(database, max_pending=3)

    def write(n: int) -> Callable[[], Awaitable[None]]:
        async def make() -> None:
            made.append(n)

        return make

    with caplog.at_level(logging.WARNING, "resolvers.history.backlog"):
        for n in range(5):
            backlog.defer(write(n), what=f"write {n}")
        assert (backlog.pending, backlog.dropped) == (3, 2)
        assert await backlog.flush() == 3
    assert made == [2, 3, 4]
    assert backlog.pending == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("backlog full" in m for m in messages)
    assert any("2 history writes were dropped" in m for m in messages)


async def test_a_write_that_finds_the_database_away_stays_first(database: Database) -> None:
    made: list[str] = []
    away = True

    async def first() -> None:
        if away:
            raise DatabaseUnavailable()
        made.append("first")

    async def second() -> None:
        made.append("second")

    backlog = HistoryBacklog(database)
    backlog.defer(first, what="first")
    backlog.defer(second, what="second")
    assert await backlog.flush() == 0
    assert backlog.pending == 2 and made == []
    away = False
    assert await backlog.flush() == 2
    assert made == ["first", "second"]


def test_without_a_database_every_write_is_dropped_and_counted() -> None:
    async def never() -> None:
        raise AssertionError("no database: nothing is written")

    backlog = HistoryBacklog(None)
    backlog.defer(never, what="x")
    assert (backlog.pending, backlog.dropped) == (0, 1)
