"""The reconnect loop tries again every `retry_seconds` until MongoDB answers, through
the injected sleep (nothing waits for real here)."""

from __future__ import annotations

import asyncio

from pymongo.errors import ServerSelectionTimeoutError

from documents.database import Database
from tests.support.clocks import Sleeps


async def test_the_loop_waits_retry_seconds_before_each_try_until_one_connects() -> None:
    sleeps = Sleeps()
    database = Database(
        "mongodb://127.0.0.1:9/never",
        db_name="never",
        document_models=[],
        retry_seconds=2.5,
        sleep=sleeps,
    )
    tries = 0
    connected = asyncio.Event()

    async def connect() -> None:  # down twice, then up
        nonlocal tries
        tries += 1
        if tries <= 2:
            raise ServerSelectionTimeoutError("no server")
        connected.set()

    database._connect = connect  # type: ignore[method-assign]
    try:
        database.mark_down(ServerSelectionTimeoutError("lost"))
        await asyncio.wait_for(connected.wait(), 5)
        assert tries == 3
        assert sleeps.asked == [2.5, 2.5, 2.5]
    finally:
        await database.close()


async def test_following_the_server_to_an_address_that_answers_keeps_the_database_up(
    database: Database, mongo_uri: str
) -> None:
    """The embedded server came back elsewhere (here: the same server under another
    name): the next request finds the database up, with no background reconnect."""
    moved = mongo_uri.replace("127.0.0.1", "localhost")
    assert moved != mongo_uri
    await database.move_to(moved)
    assert database.available
    assert await database.ping()
