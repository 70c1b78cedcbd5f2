"""The five history fields through the real schema, as "alice", "bob" or nobody."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models
from resolvers.cursor import encode_cursor
from tests.conftest import make_settings
from tests.history.conftest import (
    DELETE,
    HISTORY,
    RENAME,
    SAVE,
    SESSIONS,
    HistoryClient,
    make_services,
    session_ids,
)
from tests.support.server import StartApp

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


async def message_count(database: Database, **query: Any) -> int:
    return await database.db["chat_messages"].count_documents(query)


async def test_save_returns_the_stored_message(client: HistoryClient) -> None:
    saved = await client.save(
        "s1",
        "Which pasta for pesto?",
        timestamp="2025-03-01T09:00:00.123456Z",
        attachments=[
            {"kind": "image", "url": "https://example.com/a.png", "mimeType": "image/png"},
            {"kind": "file", "url": "data:text/plain,hello", "name": "note.txt"},
        ],
    )
    assert saved["sessionId"] == "s1"
    assert (saved["isUser"], saved["role"], saved["status"]) == (True, "USER", "COMPLETE")
    assert saved["timestamp"] == "2025-03-01T09:00:00.123000+00:00"  # what MongoDB keeps
    assert saved["attachments"] == [
        {
            "kind": "image",
            "url": "https://example.com/a.png",
            "name": None,
            "mimeType": "image/png",
        },
        {"kind": "file", "url": "data:text/plain,hello", "name": "note.txt", "mimeType": None},
    ]
    answer = await client.save(
        "s1", "Trofie.", isUser=False, model="openrouter:x/y", cost=0.002, modelCount=2
    )
    assert (answer["role"], answer["model"], answer["cost"], answer["modelCount"]) == (
        "ASSISTANT",
        "openrouter:x/y",
        0.002,
        2,
    )
    (_, stored_answer) = (await client.history("s1"))["nodes"]
    assert stored_answer["id"] == answer["id"]


async def test_timestamp_defaults_to_now(client: HistoryClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    saved = await client.save("s1", "now")
    assert before <= datetime.fromisoformat(saved["timestamp"]) <= datetime.now(UTC)


async def test_session_counters_follow_the_saves(client: HistoryClient) -> None:
    await client.save("s1", "first question", timestamp=at(0), cost=0.25)
    await client.save("s1", "an answer", isUser=False, timestamp=at(10), cost=0.5)
    await client.save("s1", "a follow-up", timestamp=at(20))

    (session,) = (await client.sessions())["nodes"]
    assert session == {
        "id": "s1",
        "title": "first question",
        "messageCount": 3,
        "lastMessage": "a follow-up",
        "totalCost": 0.75,
        "createdAt": at(0),
        "updatedAt": at(20),
    }


async def test_title_is_the_first_user_message_cut_at_a_word(client: HistoryClient) -> None:
    words = "Could you explain how to make fresh pasta by hand without a machine, step by step?"
    await client.save("long", "  " + words + " Thanks!")
    await client.save("oneword", "x" * 100)
    await client.save("assistant-first", "Hello, how can I help?", isUser=False)

    titles = {s["id"]: s["title"] for s in (await client.sessions())["nodes"]}
    assert (
        titles["long"]
        == "Could you explain how to make fresh pasta by hand without a machine, step by"
    )
    assert len(titles["long"]) <= 80
    assert titles["oneword"] == "x" * 80
    assert titles["assistant-first"] == "New chat"

    await client.save("assistant-first", "Make me a recipe")
    await client.save("assistant-first", "Another question")
    titles = {s["id"]: s["title"] for s in (await client.sessions())["nodes"]}
    assert titles["assistant-first"] == "Make me a recipe"


async def test_two_users_with_the_same_session_id_see_only_their_own(
    client: HistoryClient,
) -> None:
    await client.save("shared", "alice's secret", cost=1.0)
    await client.save("shared", "bob's note", user="bob")
    await client.save("alice-only", "more of alice")

    bob_history = await client.history("shared", user="bob")
    assert [m["content"] for m in bob_history["nodes"]] == ["bob's note"]
    bob_sessions = await client.sessions(user="bob")
    assert session_ids(bob_sessions) == ["shared"]
    assert bob_sessions["nodes"][0]["totalCost"] == 0.0
    alice_history = await client.history("shared")
    assert [m["content"] for m in alice_history["nodes"]] == ["alice's secret"]
    assert sorted(session_ids(await client.sessions())) == ["alice-only", "shared"]


async def test_chat_history_pages_backwards_without_gaps_or_duplicates(
    client: HistoryClient,
) -> None:
    # Three messages share a timestamp, so the cursor's tie-breaker is exercised.
    stamps = [0, 1, 2, 2, 2, 3, 4]
    for i, second in enumerate(stamps):
        await client.save("s1", f"m{i}", timestamp=at(second))

    newest = await client.history("s1", last=3)
    assert [m["content"] for m in newest["nodes"]] == ["m4", "m5", "m6"]
    assert newest["pageInfo"]["hasPreviousPage"] is True
    assert newest["pageInfo"]["hasNextPage"] is False

    middle = await client.history("s1", last=3, before=newest["pageInfo"]["startCursor"])
    assert [m["content"] for m in middle["nodes"]] == ["m1", "m2", "m3"]
    assert middle["pageInfo"]["hasPreviousPage"] is True
    assert middle["pageInfo"]["hasNextPage"] is True

    oldest = await client.history("s1", last=3, before=middle["pageInfo"]["startCursor"])
    assert [m["content"] for m in oldest["nodes"]] == ["m0"]
    assert oldest["pageInfo"]["hasPreviousPage"] is False
    assert oldest["pageInfo"]["hasNextPage"] is True

    # A cursor stays valid while newer messages arrive: the page before it is unchanged.
    await client.save("s1", "m7", timestamp=at(5))
    again = await client.history("s1", last=3, before=newest["pageInfo"]["startCursor"])
    assert [m["content"] for m in again["nodes"]] == ["m1", "m2", "m3"]


async def test_chat_history_defaults_to_the_last_fifty(client: HistoryClient) -> None:
    for i in range(52):
        await client.save("s1", f"m{i}", timestamp=at(i))
    page = await client.history("s1")
    assert [m["content"] for m in page["nodes"]] == [f"m{i}" for i in range(2, 52)]
    assert page["pageInfo"]["hasPreviousPage"] is True
    empty = await client.history("s1", last=0)
    assert empty["nodes"] == []
    assert empty["pageInfo"]["hasPreviousPage"] is True


async def test_chat_sessions_pages_forwards_most_recent_first(client: HistoryClient) -> None:
    # s3 and s4 share an update time; s0 gets the newest message last.
    for i, second in enumerate([1, 2, 3, 4, 4]):
        await client.save(f"s{i}", "hello", timestamp=at(second))
    await client.save("s0", "back again", timestamp=at(9))

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await client.sessions(first=2, after=after)
        pages += 1
        seen += session_ids(page)
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen[0] == "s0"
    assert sorted(seen[1:3]) == ["s3", "s4"]
    assert seen[3:] == ["s2", "s1"]


@pytest_asyncio.fixture
async def roomy_database(mongo_uri: str, clean_db: str) -> AsyncIterator[Database]:
    """The test database with a long operation timeout.

    A thousand saves queue for the connection pool, and pymongo counts that wait against
    each operation's timeout; this test is about lost updates, not latency.
    """
    database = Database(
        mongo_uri,
        db_name=clean_db,
        document_models=document_models(),
        operation_timeout_ms=120_000,
    )
    await database.start()
    yield database
    await database.close()


async def test_a_thousand_concurrent_saves_lose_no_update(
    history_settings: Settings, roomy_database: Database
) -> None:
    client = HistoryClient(make_services(history_settings, roomy_database))
    variables = [
        {"input": {"sessionId": "busy", "content": f"m{i}", "isUser": i % 2 == 0, "cost": 0.25}}
        for i in range(1000)
    ]
    results = await asyncio.gather(*(client.run(SAVE, v) for v in variables))
    assert [r.errors for r in results if r.errors] == []

    (session,) = (await client.sessions())["nodes"]
    assert session["messageCount"] == 1000
    assert session["totalCost"] == 250.0
    assert session["title"].startswith("m")
    assert await message_count(roomy_database, sessionId="busy") == 1000
    ids = {r.data["saveMessage"]["id"] for r in results if r.data}
    assert len(ids) == 1000


async def test_delete_removes_the_session_and_all_its_messages(
    client: HistoryClient, database: Database
) -> None:
    for i in range(3):
        await client.save("doomed", f"m{i}")
    await client.save("kept", "stays")
    await client.save("doomed", "bob's own", user="bob")

    assert (await client.data(DELETE, {"sessionId": "doomed"}))["deleteChatSession"] is True
    assert session_ids(await client.sessions()) == ["kept"]
    gone = await client.error(HISTORY, {"sessionId": "doomed"})
    assert gone["code"] == "NOT_FOUND"
    assert await message_count(database, userId="alice", sessionId="doomed") == 0
    assert [m["content"] for m in (await client.history("doomed", user="bob"))["nodes"]] == [
        "bob's own"
    ]
    again = await client.error(DELETE, {"sessionId": "doomed"})
    assert again["code"] == "NOT_FOUND"


async def test_rename_trims_and_keeps_the_activity_order(client: HistoryClient) -> None:
    await client.save("old", "first", timestamp=at(1))
    await client.save("new", "second", timestamp=at(2))

    renamed = await client.data(RENAME, {"sessionId": "old", "title": "  Pasta night  "})
    assert renamed["renameChatSession"] == {
        "id": "old",
        "title": "Pasta night",
        "messageCount": 1,
        "updatedAt": at(1),
    }
    sessions = (await client.sessions())["nodes"]
    assert [(s["id"], s["title"]) for s in sessions] == [("new", "second"), ("old", "Pasta night")]
    await client.save("old", "a later question")
    titles = {s["id"]: s["title"] for s in (await client.sessions())["nodes"]}
    assert titles["old"] == "Pasta night"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, "bad\x00title"], ids=repr)
async def test_rename_refuses_a_bad_title(client: HistoryClient, title: str) -> None:
    await client.save("s1", "original")
    error = await client.error(RENAME, {"sessionId": "s1", "title": title})
    assert (error["code"], error["details"]) == ("BAD_USER_INPUT", {"field": "title"})
    assert (await client.sessions())["nodes"][0]["title"] == "original"


async def test_rename_accepts_two_hundred_characters(client: HistoryClient) -> None:
    await client.save("s1", "original")
    renamed = await client.data(RENAME, {"sessionId": "s1", "title": "t" * 200})
    assert renamed["renameChatSession"]["title"] == "t" * 200


OTHERS_SESSION_OPERATIONS = [
    pytest.param(HISTORY, {}, id="chatHistory"),
    pytest.param(DELETE, {}, id="deleteChatSession"),
    pytest.param(RENAME, {"title": "mine now"}, id="renameChatSession"),
]


@pytest.mark.parametrize(("query", "extra"), OTHERS_SESSION_OPERATIONS)
async def test_someone_elses_session_is_not_found_exactly_like_a_missing_one(
    client: HistoryClient, query: str, extra: dict[str, Any]
) -> None:
    await client.save("alices", "private")

    not_yours = await client.error(query, {"sessionId": "alices", **extra}, user="bob")
    missing = await client.error(query, {"sessionId": "nosuch", **extra}, user="bob")
    assert not_yours == missing
    assert not_yours["code"] == "NOT_FOUND"
    (session,) = (await client.sessions())["nodes"]
    assert (session["title"], session["messageCount"]) == ("private", 1)


SIGNED_IN_OPERATIONS = [
    pytest.param(SESSIONS, {}, id="chatSessions"),
    pytest.param(HISTORY, {"sessionId": "s1"}, id="chatHistory"),
    pytest.param(
        SAVE, {"input": {"sessionId": "s1", "content": "x", "isUser": True}}, id="saveMessage"
    ),
    pytest.param(DELETE, {"sessionId": "s1"}, id="deleteChatSession"),
    pytest.param(RENAME, {"sessionId": "s1", "title": "t"}, id="renameChatSession"),
]


@pytest.mark.parametrize(("query", "variables"), SIGNED_IN_OPERATIONS)
async def test_every_field_needs_a_signed_in_user(
    client: HistoryClient, database: Database, query: str, variables: dict[str, Any]
) -> None:
    await client.save("s1", "alice's")
    error = await client.error(query, variables, user=None)
    assert error["code"] == "UNAUTHENTICATED"
    assert await message_count(database) == 1


def long_data_url() -> str:
    return "data:text/plain," + "x" * 64


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sessionId": ""}, "input.sessionId"),
        ({"sessionId": "a b"}, "input.sessionId"),
        ({"sessionId": "x" * 129}, "input.sessionId"),
        ({"sessionId": "$ne"}, "input.sessionId"),
        ({"content": "x" * 201}, "input.content"),
        ({"content": "nul\x00byte"}, "input.content"),
        ({"content": "lone \ud83d surrogate"}, "input.content"),
        ({"model": "m" * 401}, "input.model"),
        ({"cost": -0.01}, "input.cost"),
        ({"modelCount": 101}, "input.modelCount"),
        ({"modelCount": -1}, "input.modelCount"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "input.timestamp"),
        ({"timestamp": (datetime.now(UTC) + timedelta(days=2)).isoformat()}, "input.timestamp"),
        ({"attachments": [{"kind": "image", "url": "https://e.com/a"}] * 3}, "input.attachments"),
        ({"attachments": [{"kind": "image", "url": "http://e.com/a"}]}, "input.attachments[0].url"),
        (
            {"attachments": [{"kind": "link", "url": "javascript:alert(1)"}]},
            "input.attachments[0].url",
        ),
        (
            {"attachments": [{"kind": "file", "url": "file:///etc/passwd"}]},
            "input.attachments[0].url",
        ),
        (
            {
                "attachments": [
                    {"kind": "image", "url": "https://e.com/a"},
                    {"kind": "file", "url": long_data_url()},
                ]
            },
            "input.attachments[1].url",
        ),
        ({"attachments": [{"kind": "", "url": "https://e.com/a"}]}, "input.attachments[0].kind"),
        (
            {"attachments": [{"kind": "image", "url": "https://e.com/a", "name": "n" * 256}]},
            "input.attachments[0].name",
        ),
        (
            {"attachments": [{"kind": "image", "url": "https://e.com/a", "mimeType": "m" * 256}]},
            "input.attachments[0].mimeType",
        ),
    ],
)
async def test_limits_are_enforced_naming_the_field_and_nothing_is_written(
    client: HistoryClient, database: Database, changes: dict[str, Any], field: str
) -> None:
    payload = {"sessionId": "s1", "content": "ok", "isUser": True, **changes}
    error = await client.error(SAVE, {"input": payload})
    assert error["code"] == "BAD_USER_INPUT"
    assert error["details"] == {"field": field}
    assert await message_count(database) == 0
    assert (await client.sessions())["nodes"] == []


async def test_limits_accept_values_at_the_edge(client: HistoryClient) -> None:
    saved = await client.save(
        "x" * 128,
        "y" * 200,
        modelCount=100,
        cost=0.0,
        attachments=[
            {"kind": "file", "url": "data:text/plain," + "z" * 48},  # exactly 64 bytes
            {"kind": "image", "url": "https://e.com/a"},
        ],
    )
    assert len(saved["content"]) == 200
    assert len(saved["attachments"]) == 2


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        (HISTORY, {"sessionId": "s1", "last": 201}, "last"),
        (HISTORY, {"sessionId": "s1", "last": -1}, "last"),
        (HISTORY, {"sessionId": "s1", "before": "not a cursor"}, "before"),
        (HISTORY, {"sessionId": "s1", "before": "c2Vzc2lvbjoxOjI"}, "before"),  # "session:1:2"
        (SESSIONS, {"first": 101}, "first"),
        (SESSIONS, {"first": -1}, "first"),
        (SESSIONS, {"after": "bXNnOjE6Mg"}, "after"),  # a message cursor ("msg:1:2")
        (HISTORY, {"sessionId": "s1", "before": encode_cursor("msg", "1:not-an-id")}, "before"),
        (
            HISTORY,
            {"sessionId": "s1", "before": encode_cursor("msg", "soon:" + "0" * 24)},
            "before",
        ),
        (HISTORY, {"sessionId": "no spaces"}, "sessionId"),
        (DELETE, {"sessionId": "../etc"}, "sessionId"),
        (RENAME, {"sessionId": "a.b", "title": "t"}, "sessionId"),
    ],
)
async def test_bad_arguments_name_the_argument(
    client: HistoryClient, query: str, variables: dict[str, Any], field: str
) -> None:
    await client.save("s1", "hello")
    error = await client.error(query, variables)
    assert (error["code"], error["details"]) == ("BAD_USER_INPUT", {"field": field})


INJECTIONS = [{"$ne": ""}, {"$gt": ""}]


@pytest.mark.parametrize("operator", INJECTIONS, ids=["$ne", "$gt"])
@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (HISTORY, lambda op: {"sessionId": op}),
        (DELETE, lambda op: {"sessionId": op}),
        (RENAME, lambda op: {"sessionId": op, "title": "pwned"}),
        (SAVE, lambda op: {"input": {"sessionId": op, "content": "x", "isUser": True}}),
        (SESSIONS, lambda op: {"after": op}),
    ],
    ids=["chatHistory", "deleteChatSession", "renameChatSession", "saveMessage", "chatSessions"],
)
async def test_operator_objects_in_variables_are_refused(
    client: HistoryClient, database: Database, query: str, variables: Any, operator: Any
) -> None:
    await client.save("s1", "alice's secret")
    error = await client.error(query, variables(operator), user="bob")
    assert error["code"] == "BAD_USER_INPUT"
    assert "alice" not in error["message"]
    assert await message_count(database) == 1
    assert (await client.sessions())["nodes"][0]["title"] == "alice's secret"
    assert (await client.sessions(user="bob"))["nodes"] == []


@pytest.mark.parametrize("text", ['{"$ne": ""}', "[$gt]", "$where"])
async def test_operator_text_as_a_session_id_is_refused(client: HistoryClient, text: str) -> None:
    await client.save("s1", "alice's secret")
    error = await client.error(HISTORY, {"sessionId": text}, user="bob")
    assert (error["code"], error["details"]) == ("BAD_USER_INPUT", {"field": "sessionId"})


async def test_operator_objects_in_raw_json_bodies_are_refused(
    start_app: StartApp, client: HistoryClient
) -> None:
    # The real app over HTTP, signed in as its local user (auth off), while alice's
    # data sits in the same database.
    app = await start_app()
    await client.save("s1", "alice's secret")
    bodies = [
        {"query": HISTORY, "variables": {"sessionId": {"$ne": ""}}},
        {"query": HISTORY, "variables": {"sessionId": {"$gt": ""}, "last": 200}},
        {"query": DELETE, "variables": {"sessionId": {"$ne": ""}}},
        {
            "query": SAVE,
            "variables": {"input": {"sessionId": {"$gt": ""}, "content": "x", "isUser": True}},
        },
        {"query": SESSIONS, "variables": {"first": {"$ne": ""}}},
    ]
    for body in bodies:
        async with app.http.post(
            f"{app.base_url}/graphql",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        ) as response:
            text = await response.text()
        answer = json.loads(text)
        assert answer.get("data") is None, text
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_USER_INPUT"]
        assert "alice" not in text
    own = await app.graphql(SESSIONS)
    assert own == {
        "data": {
            "chatSessions": {
                "nodes": [],
                "pageInfo": {
                    "hasNextPage": False,
                    "hasPreviousPage": False,
                    "startCursor": None,
                    "endCursor": None,
                },
            }
        }
    }
    assert session_ids(await client.sessions()) == ["s1"]


@pytest.mark.parametrize(("query", "variables"), SIGNED_IN_OPERATIONS)
async def test_no_database_configured_is_database_unavailable(
    history_settings: Settings, query: str, variables: dict[str, Any]
) -> None:
    client = HistoryClient(make_services(history_settings, None))
    error = await client.error(query, variables)
    assert error["code"] == "DATABASE_UNAVAILABLE"
    assert "Traceback" not in error["message"]


async def test_unreachable_database_fails_fast_with_database_unavailable(
    tmp_path: Path, unreachable_database: Database
) -> None:
    client = HistoryClient(make_services(make_settings(tmp_path), unreachable_database))
    for operation in SIGNED_IN_OPERATIONS:
        query, variables = cast(tuple[str, dict[str, Any]], operation.values)
        started = time.monotonic()
        error = await client.error(query, variables)
        assert time.monotonic() - started < 0.5, operation.id
        assert error == {
            "message": "the database is unavailable",
            "code": "DATABASE_UNAVAILABLE",
        }, operation.id
