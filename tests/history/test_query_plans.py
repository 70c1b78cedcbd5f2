"""The hot queries as MongoDB receives them: plain equality, served by an index, narrow.

Every command is recorded off the wire (pymongo command monitoring) while the real
schema answers, then explained on the embedded server. SecantusDB's explain reports the
index a query walks and how many documents it read; it always reports a SORT stage
above a compound index walk (it only counts a sort on the index's first field as served
by it), so the sort is checked by the documents read, not by the stage tree.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from bson import ObjectId

from aipasta.settings import Settings
from documents.database import Database
from documents.history import ChatMessage
from documents.registry import document_models
from resolvers.history.store import HistoryStore
from resolvers.identity.key_store import ApiKeyStore
from resolvers.usage.recorder import UsageRecorder
from tests.history.conftest import DELETE, HISTORY, RENAME, HistoryClient, make_services
from tests.support.commands import CommandLog
from tests.usage.test_usage_report import RECORDS, UsageClient, services

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SESSION_MESSAGES = 200
PAGE = 20


@pytest_asyncio.fixture
async def watched(mongo_uri: str, clean_db: str) -> AsyncIterator[tuple[Database, CommandLog]]:
    commands = CommandLog()
    db = Database(
        mongo_uri, db_name=clean_db, document_models=document_models(), event_listeners=[commands]
    )
    await db.start()
    yield db, commands
    await db.close()


async def fill(database: Database) -> None:
    store = HistoryStore(database)
    # Alice's long session, her other sessions, and other users' messages around them.
    for i in range(SESSION_MESSAGES):
        at = T0 + timedelta(seconds=i)
        await store.save(_message("alice", "long", at), preview="m", title="long")
    for i in range(30):
        await store.save(_message("alice", f"other-{i}", T0), preview="m", title="x")
    await database.db["chat_messages"].insert_many(
        [_message(f"u{i % 7}", "long", T0).model_dump(exclude={"id"}) for i in range(200)]
    )


def _message(user: str, session_id: str, at: datetime) -> ChatMessage:
    return ChatMessage(
        userId=user,
        sessionId=session_id,
        content="hello",
        isUser=True,
        role="user",
        timestamp=at,
        createdAt=at,
    )


async def explain(database: Database, find: dict[str, Any]) -> dict[str, Any]:
    command = {k: find[k] for k in ("find", "filter", "sort", "limit") if k in find}
    result: dict[str, Any] = await database.db.command(
        {"explain": command, "verbosity": "executionStats"}
    )
    return result


def index_names(plan: dict[str, Any]) -> set[str]:
    names = set()
    while plan:
        if plan.get("stage") == "IXSCAN":
            names.add(plan["indexName"])
        plan = plan.get("inputStage", {})
    return names


async def docs_read(database: Database, finds: list[dict[str, Any]], *indexes: str) -> int:
    """Documents the finds read; each must be plain equality on one of `indexes`."""
    total = 0
    for find in finds:
        assert all(
            not isinstance(find["filter"][field], dict)
            for field in ("userId", "sessionId")
            if field in find["filter"]
        ), find
        plan = await explain(database, find)
        winning = plan["queryPlanner"]["winningPlan"]
        assert "COLLSCAN" not in json.dumps(winning), find
        assert len(index_names(winning)) == 1 and index_names(winning) <= set(indexes), find
        total += plan["executionStats"]["totalDocsExamined"]
    return total


async def older_page_from_the_index(
    client: HistoryClient, database: Database, commands: CommandLog, newest: dict[str, Any]
) -> dict[str, Any]:
    """The page before `newest` (the session's newest page): read from the index in two
    pages' worth at most, and the right messages."""
    commands.clear()
    older: dict[str, Any] = await client.history(
        "long", last=PAGE, before=newest["pageInfo"]["startCursor"]
    )
    read = await docs_read(database, commands.finds("chat_messages"), "user_session_timestamp")
    assert read <= 2 * (PAGE + 1)
    expected = [SESSION_MESSAGES - 2 * PAGE + i for i in range(PAGE)]
    assert [n["timestamp"] for n in older["nodes"]] == [
        (T0 + timedelta(seconds=s)).isoformat() for s in expected
    ]
    return older


async def test_a_history_page_reads_about_a_page_from_the_index(
    watched: tuple[Database, CommandLog], history_settings: Settings
) -> None:
    database, commands = watched
    await fill(database)
    client = HistoryClient(make_services(history_settings, database))

    commands.clear()
    newest = await client.history("long", last=PAGE)
    assert len(newest["nodes"]) == PAGE and newest["pageInfo"]["hasPreviousPage"]
    read = await docs_read(database, commands.finds("chat_messages"), "user_session_timestamp")
    # Two pages' worth at most, of a session of 200 in a collection of 430.
    assert read <= 2 * (PAGE + 1)

    older = await older_page_from_the_index(client, database, commands, newest)
    assert older["pageInfo"]["hasNextPage"] and older["pageInfo"]["hasPreviousPage"]


async def test_a_sessions_page_is_served_by_the_index(
    watched: tuple[Database, CommandLog], history_settings: Settings
) -> None:
    database, commands = watched
    await fill(database)
    client = HistoryClient(make_services(history_settings, database))

    commands.clear()
    first = await client.sessions(first=5)
    await client.sessions(first=5, after=first["pageInfo"]["endCursor"])
    finds = commands.finds("chat_sessions")
    assert len(finds) >= 2  # the first page; the second's ties (and older sessions)
    # Equality on userId alone: SecantusDB walks either index that starts with it
    # (the same documents either way), MongoDB the one that also serves the sort.
    await docs_read(database, finds[:1], "user_updated", "user_session_unique")
    await docs_read(database, finds[1:], "user_updated")


async def test_a_history_page_reads_about_a_page_even_when_the_summary_ends_later(
    watched: tuple[Database, CommandLog], history_settings: Settings
) -> None:
    # The session's summary says its newest message is ten days after the real one, as
    # data written by an older fill (or imported by hand) can: the first read has to
    # look for the messages; the next ones start where it found them.
    database, commands = watched
    await fill(database)
    await database.db["chat_sessions"].update_one(
        {"userId": "alice", "sessionId": "long"},
        {"$set": {"updatedAt": T0 + timedelta(days=10)}},
    )
    client = HistoryClient(make_services(history_settings, database))
    newest = await client.history("long", last=PAGE)

    commands.clear()
    again = await client.history("long", last=PAGE)
    assert again == newest
    read = await docs_read(database, commands.finds("chat_messages"), "user_session_timestamp")
    assert read <= 2 * (PAGE + 1)

    await older_page_from_the_index(client, database, commands, newest)


async def test_a_sessions_page_reads_about_a_page_of_many_sessions(
    watched: tuple[Database, CommandLog], history_settings: Settings
) -> None:
    database, commands = watched
    store = HistoryStore(database)
    for i in range(60):
        at = T0 + timedelta(minutes=i)
        await store.save(_message("alice", f"s{i}", at), preview="m", title="x")
        await store.save(_message(f"u{i % 3}", f"s{i}", at), preview="m", title="x")
    client = HistoryClient(make_services(history_settings, database))
    newest = await client.sessions(first=PAGE)  # finds where they are

    commands.clear()
    assert await client.sessions(first=PAGE) == newest
    second = await client.sessions(first=PAGE, after=newest["pageInfo"]["endCursor"])
    assert [n["id"] for n in second["nodes"]] == [f"s{59 - PAGE - i}" for i in range(PAGE)]
    finds = commands.finds("chat_sessions")
    read = await docs_read(database, finds[:1], "user_updated")
    assert read <= 2 * (PAGE + 1)
    read = await docs_read(database, finds[1:], "user_updated")
    assert read <= 2 * (PAGE + 1)


def _filters(commands: CommandLog, collection: str) -> list[dict[str, Any]]:
    """Every filter sent to `collection`: finds, updates, deletes, findAndModify."""
    found: list[dict[str, Any]] = []
    for command in commands.commands:
        name = next(iter(command))
        if command[name] != collection:
            continue
        if name == "find":
            found.append(command["filter"])
        elif name == "findAndModify":
            found.append(command["query"])
        elif name in ("update", "delete"):
            found += [op["q"] for op in command[name + "s"]]
    return found


def _addressed(filter: dict[str, Any]) -> bool:
    """Served by an index on SecantusDB: plain equality on (userId, sessionId) alone, or
    an `_id` first, which it looks up before it checks the rest."""
    if filter.keys() == {"userId", "sessionId"}:
        return all(isinstance(v, str) for v in filter.values())
    first, value = next(iter(filter.items()))
    return first == "_id" and (
        isinstance(value, ObjectId)
        or (value.keys() == {"$in"} and all(isinstance(v, ObjectId) for v in value["$in"]))
    )


async def test_saving_deleting_and_renaming_address_one_session_by_index_or_id(
    watched: tuple[Database, CommandLog], history_settings: Settings
) -> None:
    # Any other filter on these collections is served, on SecantusDB, by its first
    # indexed clause alone: `userId`, all of the user's sessions or messages.
    database, commands = watched
    await fill(database)
    client = HistoryClient(make_services(history_settings, database))

    commands.clear()
    await client.save("long", "one more")
    await client.save("new", "a first message")
    assert commands.commands
    for collection in ("chat_sessions", "chat_messages"):
        assert all(_addressed(f) for f in _filters(commands, collection)), collection

    # The session's own messages are read to delete them, no one else's.
    own = {"find": "chat_messages", "filter": {"userId": "alice", "sessionId": "long"}}
    assert await docs_read(database, [own], "user_session_timestamp") == SESSION_MESSAGES + 1
    commands.clear()
    await client.data(DELETE, {"sessionId": "long"})
    for collection in ("chat_sessions", "chat_messages"):
        assert all(_addressed(f) for f in _filters(commands, collection)), collection
    assert [f["filter"] for f in commands.finds("chat_messages")] == [own["filter"]]
    # SecantusDB's findAndModify re-checks its match by a scan of the collection.
    assert "findAndModify" not in commands.names()

    commands.clear()
    renamed = await client.data(RENAME, {"sessionId": "other-1", "title": "Renamed"})
    assert renamed["renameChatSession"]["title"] == "Renamed"
    assert all(_addressed(f) for f in _filters(commands, "chat_sessions"))
    assert "findAndModify" not in commands.names()
    assert await client.history("other-0", last=5)  # the others are still there
    assert (await client.error(HISTORY, {"sessionId": "long"}))["code"] == "NOT_FOUND"


async def test_an_api_key_is_looked_up_by_plain_equality_on_its_index(
    watched: tuple[Database, CommandLog],
) -> None:
    database, commands = watched
    keys = ApiKeyStore(database)
    created = await keys.create(user_id="alice")
    commands.clear()
    assert await keys.find(created.record.keyHash) is not None
    (find,) = commands.finds("api_keys")
    assert find["filter"] == {"keyHash": created.record.keyHash}
    plan = await explain(database, find)
    assert index_names(plan["queryPlanner"]["winningPlan"]) == {"keyHash_1"}


async def test_a_usage_report_matches_on_its_index(
    watched: tuple[Database, CommandLog], tmp_path: Path
) -> None:
    database, commands = watched
    recorder = UsageRecorder(database)
    for record in RECORDS:
        recorder.record(record)
    assert await recorder.flush() == len(RECORDS)
    commands.clear()
    await UsageClient(services(tmp_path, database)).report(
        since="2025-03-01T00:00:00Z", until="2025-04-01T00:00:00Z"
    )
    (aggregate,) = [c for c in commands.commands if c.get("aggregate") == "usage_records"]
    match = aggregate["pipeline"][0]["$match"]
    assert match["userId"] == "alice"
    plan = await explain(database, {"find": "usage_records", "filter": match})
    assert index_names(plan["queryPlanner"]["winningPlan"]) == {"user_created"}


async def test_an_api_key_of_the_wrong_type_is_refused_before_any_query(
    watched: tuple[Database, CommandLog],
) -> None:
    database, commands = watched
    commands.clear()
    sneaky: Any = {"$ne": ""}
    with pytest.raises(TypeError, match="must be a plain value"):
        await ApiKeyStore(database).find(sneaky)
    assert commands.names() == []
