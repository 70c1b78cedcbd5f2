"""Pages read in time windows answer exactly what one query over everything would.

The store reads a page in windows of time sized from the session's summary and from
what it read there before (resolvers.history.store). Whatever the times look like
(bursts after years of quiet, thousands of ties, a summary that disagrees with its
messages as imported or hand-written data can) and whether the store has read the
session before or not, every page holds what a plain sorted read gives.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from documents.database import Database
from documents.history import ChatMessage
from resolvers.history.store import HistoryStore, Position, forget_read_hints

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _times(rng: random.Random, shape: str) -> list[datetime]:
    if shape == "even":
        return [T0 + i * timedelta(seconds=7) for i in range(120)]
    if shape == "burst after quiet":  # a year of imported history, then one busy second
        return [T0 - timedelta(days=365) + i * timedelta(days=4) for i in range(80)] + [
            T0 + i * 10 * MS for i in range(70)
        ]
    if shape == "ties":  # whole pages share one millisecond
        return [T0] * 40 + [T0 + timedelta(seconds=1)] * 25 + [T0 - MS] * 9 + [T0 + MS] * 30
    if shape == "random":
        return [T0 + rng.randrange(0, 10**6) * MS for _ in range(130)]
    if shape == "old and skewed":  # from 2000 on, and a day ahead of the rest
        return (
            [datetime(2000, 1, 1, tzinfo=UTC) + i * MS for i in range(20)]
            + [T0 + i * timedelta(minutes=3) for i in range(60)]
            + [T0 + timedelta(days=400)] * 3
        )
    raise AssertionError(shape)


def _summaries(times: list[datetime]) -> dict[str, Callable[[dict[str, Any]], None]]:
    newest, oldest = max(times), min(times)

    def exact(doc: dict[str, Any]) -> None:
        pass

    def ends_later(doc: dict[str, Any]) -> None:  # as an older bench fill wrote them
        doc["updatedAt"] = oldest + timedelta(seconds=len(times))
        if doc["updatedAt"] < newest:
            doc["updatedAt"] = newest + timedelta(days=30)

    def ends_earlier(doc: dict[str, Any]) -> None:
        doc["updatedAt"] = oldest + (newest - oldest) / 3

    def starts_later(doc: dict[str, Any]) -> None:
        doc["createdAt"] = oldest + (newest - oldest) / 2

    def undercounted(doc: dict[str, Any]) -> None:
        doc["messageCount"] = 1

    return {
        "exact": exact,
        "ends later": ends_later,
        "ends earlier": ends_earlier,
        "starts later": starts_later,
        "undercounted": undercounted,
    }


async def _fill(database: Database, times: list[datetime], summary: str) -> list[ObjectId]:
    """The session "s" of alice with messages at `times` (and bob's around it); the ids
    newest first, as a page sorts them."""
    epoch = ObjectId()
    docs = [
        ChatMessage(
            userId=user,
            sessionId="s",
            content=f"{user} {i}",
            isUser=True,
            role="user",
            timestamp=at,
            createdAt=at,
            sessionEpoch=epoch,
        ).model_dump(exclude={"id"})
        for user in ("alice", "bob")
        for i, at in enumerate(times)
    ]
    await database.db["chat_messages"].insert_many(docs)
    session: dict[str, Any] = {
        "userId": "alice",
        "sessionId": "s",
        "title": "s",
        "messageCount": len(times),
        "lastMessage": "x",
        "totalCost": 0,
        "epoch": epoch,
        "deleting": False,
        "createdAt": min(times),
        "updatedAt": max(times),
    }
    _summaries(times)[summary](session)
    await database.db["chat_sessions"].insert_one(session)
    mine = [d for d in docs if d["userId"] == "alice"]
    mine.sort(key=lambda d: (d["timestamp"], d["_id"]), reverse=True)
    return [d["_id"] for d in mine]


async def _read_back(store: HistoryStore, last: int, *, cold: bool) -> list[ObjectId]:
    """Every message of alice's session, page by page from the newest, newest first."""
    seen: list[ObjectId] = []
    before: Position | None = None
    while True:
        if cold:
            forget_read_hints()
        session = await store.session("alice", "s")
        assert session is not None
        page = await store.messages_before(session, last=last, before=before)
        assert len(page.items) == last or not page.has_more
        seen += [m.id for m in reversed(page.items) if m.id is not None]
        if not page.has_more:
            return seen
        oldest = page.items[0]
        assert oldest.id is not None
        before = Position(at=oldest.timestamp, id=oldest.id)


@pytest.mark.parametrize(
    "summary", ["exact", "ends later", "ends earlier", "starts later", "undercounted"]
)
@pytest.mark.parametrize("shape", ["even", "burst after quiet", "ties", "random", "old and skewed"])
async def test_history_pages_hold_every_message_once_in_order(
    database: Database, shape: str, summary: str
) -> None:
    expected = await _fill(database, _times(random.Random(shape), shape), summary)
    store = HistoryStore(database)
    forget_read_hints()
    for last in (1, 7, 50):
        assert await _read_back(store, last, cold=True) == expected
        # Read again: now sized from what the first reads found.
        assert await _read_back(store, last, cold=False) == expected
        assert await _read_back(store, last, cold=False) == expected


async def test_the_newest_page_is_right_after_messages_older_and_newer_than_it_saw(
    database: Database,
) -> None:
    store = HistoryStore(database)
    for i in range(30):
        await store.save(_message(T0 + timedelta(seconds=i)), preview="m", title="s")
    session = await store.session("alice", "s")
    assert session is not None
    assert len((await store.messages_before(session, last=10, before=None)).items) == 10
    # Imported history (older), a burst in the same second and one from a skewed clock.
    for at in [T0 - timedelta(days=3)] * 5 + [T0 + timedelta(seconds=29)] * 12:
        await store.save(_message(at), preview="m", title=None)
    await store.save(_message(T0 + timedelta(hours=20)), preview="m", title=None)
    session = await store.session("alice", "s")
    assert session is not None
    page = await store.messages_before(session, last=15, before=None)
    everything = await ChatMessage.find(_owned_by_alice()).to_list()
    everything.sort(key=lambda m: (m.timestamp, m.id or ObjectId()), reverse=True)
    assert [m.id for m in page.items] == [m.id for m in everything[:15]][::-1]
    assert page.has_more


def _owned_by_alice() -> dict[str, str]:
    return {"userId": "alice", "sessionId": "s"}


def _message(at: datetime) -> ChatMessage:
    return ChatMessage(
        userId="alice",
        sessionId="s",
        content="m",
        isUser=True,
        role="user",
        timestamp=at,
        createdAt=at,
    )


async def _sessions_back(store: HistoryStore, first: int, *, cold: bool) -> list[ObjectId]:
    seen: list[ObjectId] = []
    after: Position | None = None
    while True:
        if cold:
            forget_read_hints()
        page = await store.sessions("alice", first=first, after=after)
        assert len(page.items) == first or not page.has_more
        seen += [s.id for s in page.items if s.id is not None]
        if not page.has_more:
            return seen
        last = page.items[-1]
        assert last.id is not None
        after = Position(at=last.updatedAt, id=last.id)


async def _fill_sessions(database: Database, times: list[datetime]) -> list[ObjectId]:
    docs: list[dict[str, Any]] = [
        {
            "userId": user,
            "sessionId": f"s{i}",
            "title": None,
            "messageCount": 1,
            "lastMessage": None,
            "totalCost": 0,
            "epoch": ObjectId(),
            "deleting": False,
            "createdAt": at,
            "updatedAt": at,
        }
        for user in ("alice", "bob")
        for i, at in enumerate(times)
    ]
    await database.db["chat_sessions"].insert_many(docs)
    mine = [d for d in docs if d["userId"] == "alice"]
    mine.sort(key=lambda d: (d["updatedAt"], d["_id"]), reverse=True)
    return [d["_id"] for d in mine]


@pytest.mark.parametrize("shape", ["even", "burst after quiet", "ties", "random", "old and skewed"])
async def test_session_pages_hold_every_session_once_in_order(
    database: Database, shape: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # The shapes around now (where a user's sessions usually are) and around 2025.
    times = [t - T0 + now for t in _times(random.Random(shape), shape)]
    times += _times(random.Random(shape), shape)[:40]
    expected = await _fill_sessions(database, times)
    store = HistoryStore(database)
    forget_read_hints()
    for first in (1, 7, 50):
        assert await _sessions_back(store, first, cold=True) == expected
        assert await _sessions_back(store, first, cold=False) == expected
        assert await _sessions_back(store, first, cold=False) == expected


async def test_the_first_sessions_page_is_right_after_sessions_it_saw_were_deleted(
    database: Database,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    expected = await _fill_sessions(database, [now - i * timedelta(minutes=1) for i in range(40)])
    store = HistoryStore(database)
    first = await store.sessions("alice", first=10, after=None)
    assert [s.id for s in first.items] == expected[:10]
    for session in first.items[3:]:
        assert await store.delete_session("alice", session.sessionId)
    again = await store.sessions("alice", first=10, after=None)
    assert [s.id for s in again.items] == expected[:3] + expected[10:17]
    assert again.has_more
