"""Chat history in MongoDB: messages, and the session summaries kept beside them.

Every filter is built here from typed values (documents.filters.equal refuses anything
else), so nothing a client sends can turn into a query operator. Every query is an
equality prefix of an index plus at most one range on the next indexed field, sorted
in index order: the index serves both the filter and the sort. Every call runs inside
the database's guard: an unreachable MongoDB raises documents.errors.DatabaseUnavailable.

Saving a message counts it into its session with one atomic upsert ($inc the counters,
exact Decimal128 for money, $max/$min the times, $set the preview, $setOnInsert the
rest), so concurrent saves never lose an update and listing sessions never reads
messages. Without multi-document transactions (SecantusDB has none), a save racing a
delete of the same session must still leave counters that agree with the stored
messages, or neither. The protocol:

- a session document has an `epoch`, new each time it is created; a delete first marks
  it `deleting`, then removes the messages of that epoch, then the session itself;
- a save counts into a session that is not `deleting` (finding one that is, it finishes
  that delete itself, then creates the session anew), then stores the message with the
  epoch it was counted in, then checks that this epoch is still live and not being
  deleted; if it is not, the delete may have run before the message was there, so the
  save removes its own message: it was counted in a session that is gone with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from beanie import Document, SortDirection
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from documents.history import ChatMessage, ChatSession
from documents.money import decimal128

# Two first messages racing on a new session can both try the insert; the loser's
# retry then finds the session (MongoDB 4.2+ usually retries this itself). A save
# racing deletes of its session retries after finishing each delete.
_UPSERT_ATTEMPTS = 5

# The history page reads time windows of the session, newest first, until one holds
# the page: SecantusDB reads every document its index range yields before applying a
# limit, so a range must be narrow to be cheap (MongoDB would stop at the limit anyway).
_MIN_WINDOW = timedelta(seconds=1)
_WINDOW_GROWTH = 4

# Not `equal(deleting=False)`: a session stored by an older version has no such field.
_NOT_DELETING: dict[str, Any] = {"deleting": {"$ne": True}}

T = TypeVar("T")
D = TypeVar("D", bound=Document)


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
    return equal(userId=user_id, sessionId=session_id)


def _newest_first(time_field: str) -> list[tuple[str, SortDirection]]:
    return [(time_field, SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)]


def _window_starts(session: ChatSession, want: int, upper: datetime) -> Iterator[datetime | None]:
    """Lower bounds of successive time windows below `upper`, each wider than the last,
    ending with None (no bound).

    The first is sized from the session's own counters to hold about twice `want`
    messages if they are evenly spread; each next one is four times wider. Only the
    efficiency depends on the estimate: the last window is unbounded.
    """
    span = (session.updatedAt - session.createdAt) * (2 * want / max(session.messageCount, 1))
    span = max(span, _MIN_WINDOW)
    while upper - span > session.createdAt:
        upper -= span
        yield upper
        span *= _WINDOW_GROWTH
    yield None


async def _newest(document: type[D], query: dict[str, Any], time_field: str, limit: int) -> list[D]:
    found: list[D] = (
        await document.find(query).sort(_newest_first(time_field)).limit(limit).to_list()
    )
    return found


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def save(
        self, message: ChatMessage, *, preview: str | None, title: str | None
    ) -> ChatMessage:
        """Store `message` and count it into its session (created on first use).

        `title` names a new or still untitled session; `preview` becomes lastMessage
        (None keeps the one there, e.g. for a failed answer with no text).
        """
        owned = _owned(message.userId, message.sessionId)
        async with self._database.guard():
            session = await self._count_into_session(owned, message, preview=preview, title=title)
            epoch = session.get("epoch")
            message.sessionEpoch = epoch
            await message.insert()
            if not await self._is_live(owned, epoch):
                # Deleted meanwhile, maybe before this message was stored: it goes too.
                await ChatMessage.get_pymongo_collection().delete_one(equal(_id=message.id))
                return message
            if title is not None and session.get("title") is None:
                # Only the first user message of a session started by another role
                # gets here; `title: None` keeps a title set meanwhile (rename, race).
                await ChatSession.get_pymongo_collection().update_one(
                    owned | equal(title=None),
                    {"$set": {"title": title}},
                )
        return message

    async def _count_into_session(
        self, owned: dict[str, Any], message: ChatMessage, *, preview: str | None, title: str | None
    ) -> Mapping[str, Any]:
        """Count `message` into its live session, created if there is none; the session
        as it was before (its epoch and title).

        Read, then update that epoch only, rather than one upsert: SecantusDB's
        find_one_and_update can answer None for an upsert it did apply when others race
        it, which would leave the epoch counted in unknown.
        """
        cost = decimal128(message.cost or Decimal(0))
        collection = ChatSession.get_pymongo_collection()
        for _ in range(_UPSERT_ATTEMPTS):
            current: Mapping[str, Any] | None = await collection.find_one(owned)
            if current is None:
                new = owned | {
                    "title": title,
                    "messageCount": 1,
                    "lastMessage": preview,
                    "totalCost": cost,
                    "epoch": ObjectId(),
                    "createdAt": message.timestamp,
                    "updatedAt": message.timestamp,
                }
                try:
                    await collection.insert_one(new)
                except DuplicateKeyError:
                    continue  # another first save won: count into its session
                return new
            if current.get("deleting"):
                # Its delete is under way: finish it, then start the session anew.
                await self._finish_delete(owned, current.get("epoch"))
                continue
            update: dict[str, Any] = {
                "$inc": {"messageCount": 1, "totalCost": cost},
                # Times are the messages' own: the order of concurrent saves does not matter.
                "$max": {"updatedAt": message.timestamp},
                "$min": {"createdAt": message.timestamp},
            }
            if preview is not None:
                update["$set"] = {"lastMessage": preview}
            live = owned | equal(epoch=current.get("epoch")) | _NOT_DELETING
            if (await collection.update_one(live, update)).matched_count == 1:
                return current
        # Deleted under it at every attempt: retryable, as a busy database is.
        raise DatabaseUnavailable("the session kept being deleted meanwhile; try again")

    async def _is_live(self, owned: dict[str, Any], epoch: ObjectId | None) -> bool:
        live = owned | equal(epoch=epoch) | _NOT_DELETING
        return await ChatSession.get_pymongo_collection().find_one(live, {"_id": 1}) is not None

    async def _finish_delete(self, owned: dict[str, Any], epoch: ObjectId | None) -> None:
        """The messages counted in `epoch`, then its (deleting) session. Only that
        epoch: a session created anew meanwhile keeps its own messages."""
        await ChatMessage.get_pymongo_collection().delete_many(owned | equal(sessionEpoch=epoch))
        await ChatSession.get_pymongo_collection().delete_one(
            owned | equal(epoch=epoch, deleting=True)
        )

    async def session(self, user_id: str, session_id: str) -> ChatSession | None:
        async with self._database.guard():
            return await ChatSession.find_one(_owned(user_id, session_id))

    async def messages_before(
        self, session: ChatSession, *, last: int, before: Position | None
    ) -> Page[ChatMessage]:
        """Up to `last` messages of `session` just before `before` (or the newest),
        oldest first."""
        owned = _owned(session.userId, session.sessionId)
        want = last + 1
        found: list[ChatMessage] = []
        async with self._database.guard():
            if before is None:
                upper: dict[str, datetime] = {}
                starts = _window_starts(session, want, session.updatedAt)
            else:
                # Same time, older id: equality on three indexed fields, range on `_id`.
                ties = owned | equal(timestamp=before.at) | {"_id": {"$lt": before.id}}
                found = await _newest(ChatMessage, ties, "timestamp", want)
                upper = {"$lt": before.at}
                starts = _window_starts(session, want, before.at)
            for start in starts:
                if len(found) >= want:
                    break
                window = upper if start is None else upper | {"$gte": start}
                query = owned | {"timestamp": window} if window else owned
                found += await _newest(ChatMessage, query, "timestamp", want - len(found))
                if start is not None:
                    upper = {"$lt": start}
        newest_first, has_more = found[:last], len(found) > last
        return Page(items=newest_first[::-1], has_more=has_more)

    async def has_messages_after(self, session: ChatSession, after: Position) -> bool:
        # The session's updatedAt is its newest message's time: a later one is proof.
        if session.updatedAt > after.at:
            return True
        owned = _owned(session.userId, session.sessionId)
        async with self._database.guard():
            for query in (
                owned | {"timestamp": {"$gt": after.at}},
                owned | equal(timestamp=after.at) | {"_id": {"$gt": after.id}},
            ):
                if await ChatMessage.find_one(query) is not None:
                    return True
        return False

    async def sessions(
        self, user_id: str, *, first: int, after: Position | None
    ) -> Page[ChatSession]:
        """Up to `first` sessions, most recently updated first, after `after`."""
        mine = equal(userId=user_id)
        want = first + 1
        async with self._database.guard():
            if after is None:
                found = await _newest(ChatSession, mine, "updatedAt", want)
            else:
                ties = mine | equal(updatedAt=after.at) | {"_id": {"$lt": after.id}}
                found = await _newest(ChatSession, ties, "updatedAt", want)
                if len(found) < want:
                    older = mine | {"updatedAt": {"$lt": after.at}}
                    found += await _newest(ChatSession, older, "updatedAt", want - len(found))
        return Page(items=found[:first], has_more=len(found) > first)

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Remove the session and its messages; False when the user has no such session.

        Marked first, so no save counts into it any more; then its messages, then the
        session: if the connection drops half way the session is still listed, and
        deleting it again (or the next save to it) finishes the job.
        """
        owned = _owned(user_id, session_id)
        async with self._database.guard():
            marked: (
                Mapping[str, Any] | None
            ) = await ChatSession.get_pymongo_collection().find_one_and_update(
                owned, {"$set": {"deleting": True}}, return_document=ReturnDocument.AFTER
            )
            if marked is None:
                return False
            await self._finish_delete(owned, marked.get("epoch"))
        return True

    async def rename_session(self, user_id: str, session_id: str, title: str) -> ChatSession | None:
        async with self._database.guard():
            raw = await ChatSession.get_pymongo_collection().find_one_and_update(
                _owned(user_id, session_id),
                {"$set": {"title": title}},
                return_document=ReturnDocument.AFTER,
            )
        return None if raw is None else ChatSession.model_validate(raw)
