"""Chat history in MongoDB: messages, and the session summaries kept beside them.

Every filter is built here from typed values (documents.filters.equal refuses anything
else), so nothing a client sends can turn into a query operator. Every query is an
equality prefix of an index plus at most one range on the next indexed field, sorted
in index order, or starts with the `_id` it is about: the index serves both the filter
and the sort. Every call runs inside the database's guard: an unreachable MongoDB
raises documents.errors.DatabaseUnavailable.

What the embedded database (SecantusDB) does with such a query sets their shape. It
reads every document of the index range, then matches, sorts and cuts to the limit in
Python: no limit is pushed down, and a sort on more than the filter's one field is never
taken from the index. A query on a field no index has after the equality prefix is
served by the first clause alone that an index serves (`{userId}`: all of the user's
documents). So a page reads narrow time windows of its session (or of the user's
sessions), newest first, until they hold it (`_Walk`): the first window is sized from
what this process last read there (`_ReadHints`: a time below which nothing of the
newest page lies) or else from the session's counters, each next one from how many the
windows so far held. The windows only decide what is read; the last one is unbounded,
so the answer is the same whatever they guess (MongoDB, which stops at the limit,
reads a few more small queries). Writes about one session name its `_id` first, and
none is a findAndModify, which SecantusDB re-checks by a scan of the collection.

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

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

from beanie import Document
from bson import ObjectId
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from documents.history import ChatMessage, ChatSession
from documents.money import decimal128
from resolvers.validation import EARLIEST_TIMESTAMP, to_millis

# Two first messages racing on a new session can both try the insert; the loser's
# retry then finds the session (MongoDB 4.2+ usually retries this itself). A save
# racing deletes of its session retries after finishing each delete.
_UPSERT_ATTEMPTS = 5

# Windows (see the module docstring): the smallest span; how much wider the next is
# after an empty one, and at most after one that held too few; the first window of the
# user's sessions when nothing is known (sessions are usually updated recently).
_MILLISECOND = timedelta(milliseconds=1)
_MIN_WINDOW = _MILLISECOND
_EMPTY_GROWTH = 4
_MAX_GROWTH = 16
_FIRST_SESSIONS_WINDOW = timedelta(days=1)
# Read hints kept per database, the least recently used dropped past this many.
_MAX_HINTS = 4096
# Message ids deleted per delete command.
_DELETE_BATCH = 1000

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


@dataclass
class _Hint:
    """What a read of one session (or of a user's sessions) learned, to size the next.

    `lower`: at least a page of the newest items are at or after it (None: not known),
    learned when the session had `count` messages; `span`: about how long a page of
    items took there.
    """

    lower: datetime | None
    count: int
    span: timedelta


class _ReadHints:
    """The hints of one database, the most recently used kept. Only the cost of a read
    depends on them, never its answer."""

    def __init__(self) -> None:
        self._hints: OrderedDict[tuple[Any, ...], _Hint] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> _Hint | None:
        hint = self._hints.get(key)
        if hint is not None:
            self._hints.move_to_end(key)
        return hint

    def put(self, key: tuple[Any, ...], hint: _Hint) -> None:
        self._hints[key] = hint
        self._hints.move_to_end(key)
        while len(self._hints) > _MAX_HINTS:
            self._hints.popitem(last=False)


_HINTS: WeakKeyDictionary[Database, _ReadHints] = WeakKeyDictionary()


def _hints(database: Database) -> _ReadHints:
    hints = _HINTS.get(database)
    if hints is None:
        hints = _HINTS[database] = _ReadHints()
    return hints


def forget_read_hints() -> None:
    """Drop every read hint, as a fresh process starts (for benchmarks and tests)."""
    _HINTS.clear()


def _page_span(times: list[datetime], want: int) -> timedelta | None:
    """About how long `want` items take, from the times of some read newest first."""
    if len(times) < 2:
        return None
    return max((times[0] - times[-1]) * want / (len(times) - 1), _MIN_WINDOW)


class _Walk(Generic[D]):
    """The newest `want` documents of `query` by (`field`, _id) descending below
    `upper` (None: no bound), read in time windows: the first from `first_lower` (None:
    unbounded), each next one below the last. A window reaching `floor` or earlier is
    unbounded below and the last: nothing is older than `floor`, or too little to
    matter."""

    def __init__(
        self,
        document: type[D],
        query: dict[str, Any],
        field: str,
        *,
        want: int,
        floor: datetime,
    ) -> None:
        self.document, self.query, self.field = document, query, field
        self.want, self.floor = want, max(floor, EARLIEST_TIMESTAMP)

    async def read(
        self, *, upper: datetime | None, first_lower: datetime | None, span: timedelta
    ) -> list[D]:
        found: list[D] = []
        lower = first_lower
        span = max(span, _MIN_WINDOW)
        while True:
            if lower is not None and lower <= self.floor:
                lower = None
            window: dict[str, datetime] = {}
            if lower is not None:
                # From `lower` on, as `$gt` the millisecond before it (a BSON date is
                # whole milliseconds): SecantusDB's index range drops the documents
                # equal to a `$gte` bound on a descending key (and to `$lte` on an
                # ascending one) when more keys follow in the index.
                lower = to_millis(lower)
                window["$gt"] = lower - _MILLISECOND
            if upper is not None:
                window["$lt"] = upper
            query = self.query | {self.field: window} if window else self.query
            got = await _newest(self.document, query, self.field, self.want - len(found))
            found += got
            if len(found) >= self.want or lower is None:
                return found
            if upper is not None:
                span = upper - lower
            span = _next_span(span, len(got), self.want - len(found))
            # Reaching the floor (or past it) makes the next window the unbounded last.
            upper = lower
            lower = lower - span if lower - self.floor > span else self.floor

    async def read_before(self, position: Position, span: timedelta) -> list[D]:
        """The newest `want` documents just before `position`: first those at its very
        time with an older id (equality on the indexed fields, a range on `_id`), then
        windows below that time."""
        at = position.at
        ties = self.query | equal(**{self.field: at}) | {"_id": {"$lt": position.id}}
        found = await _newest(self.document, ties, self.field, self.want)
        if len(found) < self.want:
            rest = _Walk(
                self.document, self.query, self.field, want=self.want - len(found), floor=self.floor
            )
            found += await rest.read(upper=at, first_lower=_minus(at, span), span=span)
        return found


def _next_span(span: timedelta, got: int, need: int) -> timedelta:
    """The span of the next window after one of `span` held `got`, `need` still wanted:
    twice what the density seen predicts, at most `_MAX_GROWTH` times wider."""
    if got == 0:
        return span * _EMPTY_GROWTH
    return max(min(span * (2 * need / got), span * _MAX_GROWTH), _MIN_WINDOW)


def _minus(at: datetime, span: timedelta) -> datetime:
    """`at - span`, or the earliest time a message can have if that is earlier."""
    return at - span if at - EARLIEST_TIMESTAMP > span else EARLIEST_TIMESTAMP


def _counted_span(session: ChatSession, want: int) -> timedelta:
    """The span that would hold `want` of the session's messages if they were evenly
    spread between its first and last."""
    return (session.updatedAt - session.createdAt) * (2 * want / max(session.messageCount, 1))


async def _newest(document: type[D], query: dict[str, Any], time_field: str, limit: int) -> list[D]:
    """Read with pymongo and validate, not Beanie's find: Beanie asks for a projection
    of every field, which costs SecantusDB a third more per document read."""
    cursor = document.get_pymongo_collection().find(
        query, sort=[(time_field, DESCENDING), ("_id", DESCENDING)], limit=limit
    )
    return [document.model_validate(raw) async for raw in cursor]


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
            this = equal(_id=session["_id"])
            if not await self._is_live(this | owned, epoch):
                # Deleted meanwhile, maybe before this message was stored: it goes too.
                await ChatMessage.get_pymongo_collection().delete_one(equal(_id=message.id))
                return message
            if title is not None and session.get("title") is None:
                # Only the first user message of a session started by another role
                # gets here; `title: None` keeps a title set meanwhile (rename, race).
                await ChatSession.get_pymongo_collection().update_one(
                    this | owned | equal(title=None),
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
                await self._finish_delete(equal(_id=current["_id"]) | owned, current.get("epoch"))
                continue
            update: dict[str, Any] = {
                "$inc": {"messageCount": 1, "totalCost": cost},
                # Times are the messages' own: the order of concurrent saves does not matter.
                "$max": {"updatedAt": message.timestamp},
                "$min": {"createdAt": message.timestamp},
            }
            if preview is not None:
                update["$set"] = {"lastMessage": preview}
            live = equal(_id=current["_id"]) | owned | equal(epoch=current.get("epoch"))
            live |= _NOT_DELETING
            if (await collection.update_one(live, update)).matched_count == 1:
                return current
        # Deleted under it at every attempt: retryable, as a busy database is.
        raise DatabaseUnavailable("the session kept being deleted meanwhile; try again")

    async def _is_live(self, session: dict[str, Any], epoch: ObjectId | None) -> bool:
        """Whether `session` (its `_id` first, then whose it is) is still in `epoch`
        and not being deleted."""
        live = session | equal(epoch=epoch) | _NOT_DELETING
        return await ChatSession.get_pymongo_collection().find_one(live, {"_id": 1}) is not None

    async def _finish_delete(self, session: dict[str, Any], epoch: ObjectId | None) -> None:
        """The messages counted in `epoch`, then its (deleting) session (`_id` first,
        then whose it is). Only that epoch: a session created anew meanwhile keeps its
        own messages.

        The messages are found by the session's index and deleted by `_id`: a filter on
        the epoch too would read all of the user's messages on SecantusDB (no index has
        the epoch after the session), the session's own are read anyway.
        """
        messages = ChatMessage.get_pymongo_collection()
        owned = equal(userId=session["userId"], sessionId=session["sessionId"])
        ids = [
            doc["_id"]
            async for doc in messages.find(owned, {"sessionEpoch": 1})
            if doc.get("sessionEpoch") == epoch
        ]
        for start in range(0, len(ids), _DELETE_BATCH):
            await messages.delete_many({"_id": {"$in": ids[start : start + _DELETE_BATCH]}})
        await ChatSession.get_pymongo_collection().delete_one(
            session | equal(epoch=epoch, deleting=True)
        )

    async def session(self, user_id: str, session_id: str) -> ChatSession | None:
        async with self._database.guard():
            raw = await ChatSession.get_pymongo_collection().find_one(_owned(user_id, session_id))
        return None if raw is None else ChatSession.model_validate(raw)

    async def messages_before(
        self, session: ChatSession, *, last: int, before: Position | None
    ) -> Page[ChatMessage]:
        """Up to `last` messages of `session` just before `before` (or the newest),
        oldest first."""
        owned = _owned(session.userId, session.sessionId)
        want = last + 1
        hints = _hints(self._database)
        key = ("messages", session.userId, session.sessionId, session.epoch)
        hint = hints.get(key)
        span = hint.span if hint is not None else _counted_span(session, want)
        walk = _Walk(ChatMessage, owned, "timestamp", want=want, floor=session.createdAt)
        async with self._database.guard():
            if before is None:
                fresh = (
                    hint is not None
                    and hint.lower is not None
                    and session.messageCount - hint.count < want
                )
                # Unbounded above: a message newer than the summary says is still read.
                first = (
                    hint.lower if fresh and hint is not None else _minus(session.updatedAt, span)
                )
                found = await walk.read(upper=None, first_lower=first, span=span)
            else:
                found = await walk.read_before(before, span)
        learned = _page_span([m.timestamp for m in found], want) or span
        if before is None and len(found) >= want:
            hints.put(key, _Hint(found[want - 1].timestamp, session.messageCount, learned))
        elif hint is not None:
            hints.put(key, _Hint(hint.lower, hint.count, learned))
        else:
            hints.put(key, _Hint(None, session.messageCount, learned))
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
                if await ChatMessage.get_pymongo_collection().find_one(query, {"_id": 1}):
                    return True
        return False

    async def sessions(
        self, user_id: str, *, first: int, after: Position | None
    ) -> Page[ChatSession]:
        """Up to `first` sessions, most recently updated first, after `after`."""
        mine = equal(userId=user_id)
        want = first + 1
        hints = _hints(self._database)
        key = ("sessions", user_id)
        hint = hints.get(key)
        span = hint.span if hint is not None else _FIRST_SESSIONS_WINDOW
        walk = _Walk(ChatSession, mine, "updatedAt", want=want, floor=EARLIEST_TIMESTAMP)
        async with self._database.guard():
            if after is None:
                if hint is not None and hint.lower is not None:
                    first_lower = hint.lower
                else:
                    first_lower = _minus(datetime.now(UTC), span)
                found = await walk.read(upper=None, first_lower=first_lower, span=span)
            else:
                found = await walk.read_before(after, span)
        learned = _page_span([s.updatedAt for s in found], want) or span
        # Sessions only move up (a save raises updatedAt) or go: the newest page's
        # oldest time stays a bound below which no newer page lies, until deletes.
        if after is None and len(found) >= want:
            hints.put(key, _Hint(found[want - 1].updatedAt, 0, learned))
        else:
            hints.put(key, _Hint(hint.lower if hint else None, 0, learned))
        return Page(items=found[:first], has_more=len(found) > first)

    async def delete_session(self, user_id: str, session_id: str) -> bool:
        """Remove the session and its messages; False when the user has no such session.

        Marked first, so no save counts into it any more; then its messages, then the
        session: if the connection drops half way the session is still listed, and
        deleting it again (or the next save to it) finishes the job.

        Read, then mark that epoch by `_id`, rather than one find_one_and_update:
        SecantusDB's findAndModify re-checks its match with a filter no index serves,
        a scan of every session (100 ms at 10,000 sessions).
        """
        owned = _owned(user_id, session_id)
        sessions = ChatSession.get_pymongo_collection()
        async with self._database.guard():
            for _ in range(_UPSERT_ATTEMPTS):
                current: Mapping[str, Any] | None = await sessions.find_one(owned)
                if current is None:
                    return False
                this = equal(_id=current["_id"]) | owned
                epoch = current.get("epoch")
                mark = {"$set": {"deleting": True}}
                if (await sessions.update_one(this | equal(epoch=epoch), mark)).matched_count:
                    await self._finish_delete(this, epoch)
                    return True
        # Deleted and created anew under it at every attempt: retryable.
        raise DatabaseUnavailable("the session kept being replaced meanwhile; try again")

    async def rename_session(self, user_id: str, session_id: str, title: str) -> ChatSession | None:
        """The renamed session, or None when the user has no such session. An update,
        then a read (not find_one_and_update, for the reason delete_session gives)."""
        owned = _owned(user_id, session_id)
        sessions = ChatSession.get_pymongo_collection()
        async with self._database.guard():
            if not (await sessions.update_one(owned, {"$set": {"title": title}})).matched_count:
                return None
            raw = await sessions.find_one(owned)
        return None if raw is None else ChatSession.model_validate(raw)
