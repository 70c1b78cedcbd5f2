"""Fill the gateway's database directly with chat history and usage records.

The documents have the shape of `documents/history.py` and `documents/usage.py`
(pymongo bulk inserts), so the history and usage queries can be measured on a large
collection without sending a million chats first. A session's summary says what the
gateway's saves would have made it say: its createdAt and updatedAt are its oldest and
newest message's times, and its messages carry its epoch (a summary whose times disagree
with its messages makes the history store size its reads wrongly, as it did here once).

Usage records come with their per-day totals (`documents/usage_totals.py`, summed by
the gateway's own helper) as the gateway's recorder would have kept them;
`usage_totals=False` writes them as a version before the totals did, for the start-up
backfill to count.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.decimal128 import Decimal128
from pymongo import MongoClient, UpdateOne

from documents.usage_totals import BACKFILL, BACKFILL_STATE_ID
from resolvers.usage.totals import Sums, TotalsKey, group_records

BATCH = 5000
MODELS = ("openrouter:sim/chat", "openrouter:sim/chat-free", "sim20:sim/chat")
BIG_SESSION = "bench-big-session"
SMALL_SESSION_MESSAGES = 100
MESSAGE_GAP_MS = 10


@dataclass(frozen=True)
class Filled:
    messages: int
    sessions: int
    usage_records: int
    seconds: float


def _message(user: str, session: str, i: int, at: datetime, epoch: ObjectId) -> dict[str, Any]:
    is_user = i % 2 == 0
    return {
        "userId": user,
        "sessionId": session,
        "content": f"message {i} of {session}: " + "some words of a chat " * 6,
        "isUser": is_user,
        "role": "user" if is_user else "assistant",
        "model": None if is_user else MODELS[0],
        "timestamp": at,
        "attachments": [],
        "cost": None if is_user else 0.000012,
        "modelCount": None if is_user else 1,
        "status": "COMPLETE",
        "usage": None
        if is_user
        else {"promptTokens": 12, "completionTokens": 50, "totalTokens": 62, "estimated": False},
        "sessionEpoch": epoch,
        "createdAt": at,
    }


def _message_time(base: datetime, i: int) -> datetime:
    """The time of message `i` of a session started at `base`: 10 ms apart."""
    return base + timedelta(milliseconds=i * MESSAGE_GAP_MS)


def _session(user: str, session: str, count: int, at: datetime) -> dict[str, Any]:
    """The session's summary as the gateway keeps it: createdAt and updatedAt are its
    oldest and newest message's times (the $min/$max of every save)."""
    return {
        "userId": user,
        "sessionId": session,
        "title": f"Session {session}",
        "messageCount": count,
        "lastMessage": "the last words",
        "totalCost": 0.000012 * count / 2,
        "epoch": ObjectId(),
        "deleting": False,
        "createdAt": at,
        "updatedAt": _message_time(at, count - 1),
    }


def _sessions(user: str, total: int, big: int) -> Iterator[tuple[str, str, int]]:
    """(user, session, messages): `user`'s big session, then sessions of 100 messages
    shared by `user` (one in ten) and other users until `total` messages."""
    yield user, BIG_SESSION, big
    left, n = total - big, 0
    while left > 0:
        count = min(SMALL_SESSION_MESSAGES, left)
        owner = user if n % 10 == 0 else f"bench-user-{n % 997}"
        yield owner, f"s-{n}", count
        left -= count
        n += 1


def _batches(docs: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(
    uri: str,
    db_name: str,
    *,
    user: str,
    messages: int,
    big_session: int,
    usage_records: int,
    usage_totals: bool = True,
) -> Filled:
    """Insert `messages` chat messages (a `big_session` of them in one session of
    `user`) with their sessions, and `usage_records` usage records of `user` spread
    over 90 days (with their totals unless `usage_totals` is false). Blocking: run it
    in a thread."""
    started = datetime.now(UTC)
    epoch = started - timedelta(days=90)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        db = client[db_name]
        sessions = list(_sessions(user, messages, min(big_session, messages)))
        session_docs = [
            _session(owner, session, count, epoch + timedelta(minutes=n))
            for n, (owner, session, count) in enumerate(sessions)
        ]

        def all_messages() -> Iterator[dict[str, Any]]:
            for doc in session_docs:
                owner, session, base = doc["userId"], doc["sessionId"], doc["createdAt"]
                for i in range(doc["messageCount"]):
                    at = _message_time(base, i)
                    yield _message(owner, session, i, at, doc["epoch"])

        for batch in _batches(all_messages()):
            db["chat_messages"].insert_many(batch, ordered=False)
        for batch in _batches(iter(session_docs)):
            db["chat_sessions"].insert_many(batch, ordered=False)

        rng = random.Random(7)

        def all_usage() -> Iterator[dict[str, Any]]:
            span = (started - epoch).total_seconds()
            for i in range(usage_records):
                at = epoch + timedelta(seconds=span * i / max(usage_records, 1))
                model = MODELS[rng.randrange(len(MODELS))]
                yield {
                    "userId": user,
                    "requestId": f"bench-{i}",
                    "model": model,
                    "provider": model.partition(":")[0],
                    "promptTokens": 12,
                    "completionTokens": 50,
                    "totalTokens": 62,
                    "estimated": False,
                    "cost": Decimal128("0.000012"),
                    "costKnown": True,
                    "latencyMs": 3.5,
                    "timeToFirstTokenMs": 1.2,
                    "status": "complete" if i % 50 else "failed",
                    "errorCode": None if i % 50 else "PROVIDER_ERROR",
                    "createdAt": at,
                }

        totals: dict[TotalsKey, Sums] = {}
        for batch in _batches(all_usage()):
            if usage_totals:
                for record in batch:
                    record["totalled"] = True
                for key, sums in group_records(batch).items():
                    totals.setdefault(key, Sums()).add(sums)
            db["usage_records"].insert_many(batch, ordered=False)
        if totals:
            # Set, like the backfill's totals: filling twice would not count twice.
            db["usage_totals"].bulk_write(
                [
                    UpdateOne(
                        {"userId": u, "day": d, "model": m, "provider": p, "source": BACKFILL},
                        {"$set": sums.as_fields()},
                        upsert=True,
                    )
                    for (u, d, m, p), sums in totals.items()
                ],
                ordered=False,
            )
            # Every record is in the totals already: the start-up backfill has nothing
            # to do. (Left "running" by the first gateway start, stopped before it was
            # done, it would scan every record again at each bench start, beside the
            # first scenarios.)
            db["usage_totals_state"].replace_one(
                {"name": BACKFILL_STATE_ID},
                {
                    "name": BACKFILL_STATE_ID,
                    "state": "done",
                    "owner": "bench-fill",
                    "leaseUntil": started,
                    "finishedAt": started,
                },
                upsert=True,
            )
    finally:
        client.close()
    seconds = (datetime.now(UTC) - started).total_seconds()
    return Filled(messages, len(sessions), usage_records, seconds)
