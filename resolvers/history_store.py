"""Chat history in MongoDB: messages, and the session summaries kept beside them.

Every filter is built here from typed values, each compared with `$eq`, so nothing a
client sends can turn into a query operator. Every call runs inside the database's
guard: an unreachable MongoDB raises documents.errors.DatabaseUnavailable.

Saving a message is two writes: the message, then one atomic upsert of its session
($inc the counters, $max/$min the times, $set the preview, $setOnInsert the rest), so
concurrent saves never lose an update and listing sessions never reads messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from beanie import SortDirection
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.database import Database
from documents.history import ChatMessage, ChatSession

# Two first messages racing on a new session can both try the insert; the loser's
# retry then finds the session (MongoDB 4.2+ usually retries this itself).
_UPSERT_ATTEMPTS = 3

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a keyed page starts: a (time, _id) pair, both from a stored document."""

    at: datetime
    id: ObjectId


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # Whether more items follow in the direction of the paging (older messages,
    # less recently updated sessions).
    has_more: bool


def _owned(user_id: str, session_id: str) -> dict[str, Any]:
    return {"userId": {"$eq": user_id}, "sessionId": {"$eq": session_id}}


def _before(time_field: str, position: Position) -> dict[str, Any]:
    """Strictly before `position` in (time, _id) order."""
    return {
        "$or": [
            {time_field: {"$lt": position.at}},
            {time_field: {"$eq": position.at}, "_id": {"$lt": position.id}},
        ]
    }


def _after(time_field: str, position: Position) -> dict[str, Any]:
    return {
        "$or": [
            {time_field: {"$gt": position.at}},
            {time_field: {"$eq": position.at}, "_id": {"$gt": position.id}},
        ]
    }


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(self, message: ChatMessage, *, preview: str, title: str | None) -> ChatMessage:
        """Store `message` and fold it into its session (created on first use).

        `title` names a new or still untitled session; `preview` becomes lastMessage.
        """
        async with self._database.guard():
            await message.insert()
            session = await self._fold_into_session(message, preview=preview, title=title)
            if title is not None and (session is None or session.get("title") is None):
                # Only the first user message of a session started by another role
                # gets here; `$eq: None` keeps a title set meanwhile (rename, race).
                await ChatSession.get_pymongo_collection().update_one(
                    {**_owned(message.userId, message.sessionId), "title": {"$eq": None}},
                    {"$set": {"title": title}},
                )
        return message

    async def _fold_into_session(
        self, message: ChatMessage, *, preview: str, title: str | None
    ) -> Mapping[str, Any] | None:
        update = {
            "$inc": {"messageCount": 1, "totalCost": message.cost or 0.0},
            "$set": {"lastMessage": preview},
            # Times are the messages' own, so the order of concurrent saves does not matter.
            "$max": {"updatedAt": message.timestamp},
            "$min": {"createdAt": message.timestamp},
            "$setOnInsert": {"title": title},
        }
        collection = ChatSession.get_pymongo_collection()
        for attempt in range(_UPSERT_ATTEMPTS):
            try:
                session: Mapping[str, Any] | None = await collection.find_one_and_update(
                    _owned(message.userId, message.sessionId),
                    update,
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                if attempt + 1 == _UPSERT_ATTEMPTS:
                    raise
            else:
                return session
        raise AssertionError("unreachable")  # pragma: no cover

    async def session(self, user_id: str, session_id: str) -> ChatSession | None:
        async with self._database.guard():
            return await ChatSession.find_one(_owned(user_id, session_id))

    async def messages_before(
        self, user_id: str, session_id: str, *, last: int, before: Position | None
    ) -> Page[ChatMessage]:
        """Up to `last` messages just before `before` (or the newest), oldest first."""
        query = _owned(user_id, session_id)
        if before is not None:
            query |= _before("timestamp", before)
        async with self._database.guard():
            newest_first = (
                await ChatMessage.find(query)
                .sort([("timestamp", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)])
                .limit(last + 1)
                .to_list()
            )
        newest_first, has_more = newest_first[:last], len(newest_first) > last
        return Page(items=newest_first[::-1], has_more=has_more)

    async def has_messages_after(self, user_id: str, session_id: str, after: Position) -> bool:
        async with self._database.guard():
            found = await ChatMessage.find_one(
                _owned(user_id, session_id) | _after("timestamp", after)
            )
        return found is not None

    async def sessions(
        self, user_id: str, *, first: int, after: Position | None
    ) -> Page[ChatSession]:
        """Up to `first` sessions, most recently updated first, after `after`."""
        query: dict[str, Any] = {"userId": {"$eq": user_id}}
        if after is not None:
            query |= _before("updatedAt", after)
        async with self._database.guard():
            found = (
                await ChatSession.find(query)
                .sort([("updatedAt", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)])
                .limit(first + 1)
                .to_list()
            )
        return Page(items=found[:first], has_more=len(found) > first)

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Remove the session and its messages; False when the user has no such session.

        Messages go first: if the connection drops half way the session is still
        listed, so deleting it again finishes the job instead of leaving orphans.
        """
        owned = _owned(user_id, session_id)
        async with self._database.guard():
            if await ChatSession.find_one(owned) is None:
                return False
            await ChatMessage.get_pymongo_collection().delete_many(owned)
            result = await ChatSession.get_pymongo_collection().delete_one(owned)
        return result.deleted_count == 1

    async def rename_session(self, user_id: str, session_id: str, title: str) -> ChatSession | None:
        async with self._database.guard():
            raw = await ChatSession.get_pymongo_collection().find_one_and_update(
                _owned(user_id, session_id),
                {"$set": {"title": title}},
                return_document=ReturnDocument.AFTER,
            )
        return None if raw is None else ChatSession.model_validate(raw)
