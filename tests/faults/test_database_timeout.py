"""One slow database operation fails alone: it is not MongoDB being down.

The slow operation is made deterministic with the server's own `failCommand` failpoint
(on a SecantusDB of the test's own, started with test commands): the next `find` of the
gateway's client (appName "aipasta") is held for longer than the operation timeout,
everything else runs as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from documents.database import Database
from documents.errors import DatabaseTimeout
from documents.registry import document_models
from resolvers.history.store import HistoryStore
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.faults.conftest import DedicatedMongo
from tests.history.conftest import HISTORY, HistoryClient, make_services
from tests.history.test_history_store import message

OPERATION_TIMEOUT_MS = 300
HELD_MS = 1500


@pytest_asyncio.fixture
async def mongo_uri(dedicated_mongo: DedicatedMongo) -> str:
    await dedicated_mongo.start(test_commands=True)
    return dedicated_mongo.uri


@pytest_asyncio.fixture
async def database(mongo_uri: str) -> AsyncIterator[Database]:
    db = Database(
        mongo_uri,
        db_name="timeouts",
        document_models=document_models(),
        operation_timeout_ms=OPERATION_TIMEOUT_MS,
    )
    await db.start()
    yield db
    await db.close()


@asynccontextmanager
async def next_find_held(mongo_uri: str) -> AsyncIterator[None]:
    admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, appname="test-admin")
    failpoint = {"configureFailPoint": "failCommand"}
    try:
        await admin.admin.command(
            {
                **failpoint,
                "mode": {"times": 1},
                "data": {
                    "failCommands": ["find"],
                    "appName": "aipasta",
                    "blockConnection": True,
                    "blockTimeMS": HELD_MS,
                },
            }
        )
        yield
    finally:
        await admin.admin.command({**failpoint, "mode": "off"})
        await admin.close()


async def test_an_operation_past_its_timeout_leaves_the_database_up(
    database: Database, mongo_uri: str
) -> None:
    keys = ApiKeyStore(database)
    created = await keys.create(user_id="alice")
    key_hash = created.record.keyHash

    async with next_find_held(mongo_uri):
        with pytest.raises(DatabaseTimeout, match=r"did not answer within 0\.3 s"):
            await keys.find(key_hash)

    assert database.available
    # The next API-key check and the health ping work as if nothing happened.
    found = await keys.find(key_hash)
    assert found is not None and found.userId == "alice"
    assert await database.ping()
    assert database.available


async def test_a_query_past_the_database_timeout_is_a_timeout_error_not_an_outage(
    database: Database, mongo_uri: str, tmp_path: Path
) -> None:
    await HistoryStore(database).save(message("alice", "s1", "hello"), preview="hello", title="t")
    client = HistoryClient(make_services(make_settings(tmp_path), database))

    async with next_find_held(mongo_uri):
        error = await client.error(HISTORY, {"sessionId": "s1"})

    assert error["code"] == "TIMEOUT"
    assert error["details"] == {"reason": "DATABASE_TIMEOUT", "timeoutSeconds": 0.3}
    assert error["message"] == "the database did not answer within 0.3 s"
    assert database.available
    page = await client.history("s1")
    assert [n["content"] for n in page["nodes"]] == ["hello"]
