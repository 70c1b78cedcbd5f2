"""HistoryStore against the embedded MongoDB: session upkeep, keyed pages, ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from documents.database import Database
from documents.history import ChatMessage, ChatSession
from resolvers.history.store import HistoryStore, Page, Position
from tests.support.commands import CommandLog

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def message(
    user: str,
    session_id: str,
    content: str,
    at: datetime = T0,
    *,
    is_user: bool = True,
    cost: float | None = None,
) -> ChatMessage:
    return ChatMessage(
        userId=user,
        sessionId=session_id,
        content=content,
        isUser=is_user,
        role="user" if is_user else "assistant",
        timestamp=at,
        cost=cost,
        createdAt=at,
    )


async def save(store: HistoryStore, msg: ChatMessage, *, title: str | None = None) -> ChatMessage:
    return await store.save(msg, preview=msg.content, title=title)


async def messages_before(
    store: HistoryStore, user: str, session_id: str, *, last: int, before: Position | None
) -> Page[ChatMessage]:
    session = await store.session(user, session_id)
    assert session is not None
    return await store.messages_before(session, last=last, before=before)


@pytest.fixture
def store(database: Database) -> HistoryStore:
    return HistoryStore(database)


async def test_first_save_creates_the_session_and_later_saves_fold_into_it(
    store: HistoryStore,
) -> None:
    await save(store, message("alice", "s1", "hi", T0 + timedelta(minutes=5)), title="hi")
    # Out of order on purpose: the session's times are the earliest and latest message.
    await save(store, message("alice", "s1", "older", T0, is_user=False, cost=0.25))
    await save(store, message("alice", "s1", "last saved", T0 + timedelta(minutes=1), cost=0.5))

    session = await store.session("alice", "s1")
    assert session is not None
    assert session.messageCount == 3
    assert session.totalCost == 0.75
    assert session.title == "hi"
    assert session.lastMessage == "last saved"
    assert session.createdAt == T0
    assert session.updatedAt == T0 + timedelta(minutes=5)


async def test_a_session_started_by_the_assistant_is_named_by_the_first_user_message(
    store: HistoryStore,
) -> None:
    await save(store, message("alice", "s1", "Welcome!", is_user=False))
    untitled = await store.session("alice", "s1")
    assert untitled is not None and untitled.title is None
    await save(store, message("alice", "s1", "first question"), title="first question")
    await save(store, message("alice", "s1", "second question"), title="second question")
    named = await store.session("alice", "s1")
    assert named is not None and named.title == "first question"


async def test_a_rename_before_any_user_message_is_kept(store: HistoryStore) -> None:
    await save(store, message("alice", "s1", "Welcome!", is_user=False))
    await store.rename_session("alice", "s1", "My title")
    await save(store, message("alice", "s1", "question"), title="question")
    session = await store.session("alice", "s1")
    assert session is not None and session.title == "My title"


async def test_message_pages_walk_back_through_equal_timestamps_without_gaps(
    store: HistoryStore,
) -> None:
    # Five messages share one millisecond: only the _id tie-breaker orders them.
    times = [T0] * 5 + [T0 + timedelta(seconds=s) for s in (1, 2, 3)]
    for i, at in enumerate(times):
        await save(store, message("alice", "s1", f"m{i}", at))

    seen: list[str] = []
    before: Position | None = None
    while True:
        page = await messages_before(store, "alice", "s1", last=3, before=before)
        seen[:0] = [m.content for m in page.items]
        if not page.has_more:
            break
        oldest = page.items[0]
        assert oldest.id is not None
        before = Position(at=oldest.timestamp, id=oldest.id)
    assert seen == [f"m{i}" for i in range(8)]


async def test_session_pages_walk_through_equal_update_times_without_gaps(
    store: HistoryStore,
) -> None:
    for i in range(7):
        await save(store, message("alice", f"s{i}", "x", T0 + timedelta(seconds=i // 3)))

    seen: list[str] = []
    after: Position | None = None
    while True:
        page = await store.sessions("alice", first=2, after=after)
        seen += [s.sessionId for s in page.items]
        if not page.has_more:
            break
        last = page.items[-1]
        assert last.id is not None
        after = Position(at=last.updatedAt, id=last.id)
    assert sorted(seen) == [f"s{i}" for i in range(7)]
    assert len(seen) == 7
    assert seen[0] == "s6"  # the most recently updated first
    assert set(seen[-3:]) == {"s0", "s1", "s2"}


async def test_the_same_session_id_is_a_different_session_per_user(store: HistoryStore) -> None:
    await save(store, message("alice", "shared", "alice's", cost=1.0))
    await save(store, message("bob", "shared", "bob's"))

    alice = await store.session("alice", "shared")
    bob = await store.session("bob", "shared")
    assert alice is not None and bob is not None and alice.id != bob.id
    assert (alice.lastMessage, alice.totalCost) == ("alice's", Decimal("1.0"))
    assert (bob.lastMessage, bob.totalCost) == ("bob's", Decimal("0.0"))
    page = await messages_before(store, "bob", "shared", last=10, before=None)
    assert [m.content for m in page.items] == ["bob's"]


@pytest.mark.parametrize(
    "operator", [{"$ne": ""}, {"$gt": ""}, {"$exists": True}, {"$regex": ".*"}]
)
async def test_operator_objects_are_refused_before_any_query(
    store: HistoryStore, database: Database, mongo_uri: str, operator: dict[str, Any]
) -> None:
    # The resolvers refuse such ids before they get here; this checks the second wall.
    await save(store, message("alice", "s1", "secret"))
    session = await store.session("alice", "s1")
    assert session is not None
    sneaky: Any = operator
    commands = CommandLog()
    watched = Database(
        mongo_uri, db_name=database.name, document_models=[], event_listeners=[commands]
    )
    await watched.start()
    commands.clear()
    try:
        guarded = HistoryStore(watched)
        forged = session.model_copy(update={"userId": sneaky})
        for attempt in (
            guarded.session("alice", sneaky),
            guarded.session(sneaky, "s1"),
            guarded.sessions(sneaky, first=10, after=None),
            guarded.messages_before(forged, last=10, before=None),
            guarded.rename_session(sneaky, sneaky, "pwned"),
            guarded.delete_session(sneaky, sneaky),
            guarded.save(
                message("alice", "s1", "x").model_copy(update={"sessionId": sneaky}),
                preview="x",
                title=None,
            ),
        ):
            with pytest.raises(TypeError, match="must be a plain value"):
                await attempt
        assert commands.names() == []
    finally:
        await watched.close()

    session = await store.session("alice", "s1")
    assert session is not None and session.title is None
    assert await database.db["chat_messages"].count_documents({}) == 1


async def test_delete_removes_the_session_and_its_messages_only(
    store: HistoryStore, database: Database
) -> None:
    await save(store, message("alice", "s1", "a"))
    await save(store, message("alice", "s1", "b"))
    await save(store, message("alice", "s2", "keep"))
    await save(store, message("bob", "s1", "bob keeps his"))

    assert await store.delete_session("alice", "s1") is True
    assert await store.session("alice", "s1") is None
    assert await store.delete_session("alice", "s1") is False
    remaining = await ChatMessage.find_all().sort("content").to_list()
    assert [(m.userId, m.content) for m in remaining] == [
        ("bob", "bob keeps his"),
        ("alice", "keep"),
    ]
    assert await ChatSession.find_all().count() == 2


async def test_rename_changes_only_the_owners_session(store: HistoryStore) -> None:
    await save(store, message("alice", "s1", "a"), title="a")
    assert await store.rename_session("bob", "s1", "Bob's now") is None
    renamed = await store.rename_session("alice", "s1", "Renamed")
    assert renamed is not None and renamed.title == "Renamed"
    assert renamed.messageCount == 1
