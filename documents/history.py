"""Saved chat messages and the per-user sessions that summarise them.

A session id is chosen by the client and is only unique per user, so every lookup
is by (userId, sessionId). The session document carries its own counters, kept up to
date by the same write that saves a message, so listing sessions never reads messages.

Money is Decimal128 in MongoDB (`DecimalAnnotation`), so a session's `totalCost` is an
exact `$inc` sum; a float stored by an older version still reads (as its Decimal).

A session has an `epoch`, new each time the session document is created, and each of
its messages carries the epoch it was counted in. `deleting` marks a session whose
delete is under way: saves do not count into it, and delete only the messages of its
epoch (resolvers.history.store explains the protocol).

An answer keeps what a thinking or tool-using model gave besides its text: its
reasoning, its reasoning details, its tool calls and the upstream's generation id; a
tool turn keeps the id of the call it answers. Reasoning details are stored as the JSON
text they arrived as: they must be passed back to the upstream unchanged, and as text
they cannot trip BSON (keys starting with `$`, integers past 64 bits, deep nesting).
Documents saved before these fields existed read with their defaults.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from beanie import DecimalAnnotation, Document, PydanticObjectId
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.usage import USAGE_ENCODERS, StoredUsage

MessageRole = Literal["system", "user", "assistant", "tool"]


class StoredAttachment(BaseModel):
    kind: str
    url: str
    name: str | None = None
    mimeType: str | None = None


class StoredToolCall(BaseModel):
    id: str
    name: str
    # The JSON text exactly as the model wrote it.
    arguments: str


class ChatMessage(Document):
    userId: str
    sessionId: str
    content: str
    isUser: bool
    role: MessageRole
    model: str | None = None
    timestamp: datetime
    attachments: list[StoredAttachment] = []
    cost: DecimalAnnotation | None = None
    modelCount: int | None = None
    # The value of the API's MessageStatus.
    status: str = "COMPLETE"
    # Token counts of an answer.
    usage: StoredUsage | None = None
    # A FAILED answer: its error code and (redacted) message.
    errorCode: str | None = None
    error: str | None = None
    # An answer's reasoning (None when there was none or the request excluded it), its
    # reasoning details as a JSON array's text, its tool calls and generation id.
    reasoning: str | None = None
    reasoningDetails: str | None = None
    toolCalls: list[StoredToolCall] = []
    generationId: str | None = None
    # A tool turn: the id of the tool call it answers.
    toolCallId: str | None = None
    # The session epoch this message was counted in (None: saved by an older version).
    sessionEpoch: PydanticObjectId | None = None
    createdAt: datetime

    class Settings:
        name = "chat_messages"
        bson_encoders = USAGE_ENCODERS
        indexes = [
            # `_id` last so a page's sort, tie-breaker included, is read from the index.
            IndexModel(
                [
                    ("userId", ASCENDING),
                    ("sessionId", ASCENDING),
                    ("timestamp", ASCENDING),
                    ("_id", ASCENDING),
                ],
                name="user_session_timestamp",
            )
        ]


class ChatSession(Document):
    userId: str
    sessionId: str
    # None until the first user message names the session (or the user renames it).
    title: str | None = None
    messageCount: int = 0
    lastMessage: str | None = None
    totalCost: DecimalAnnotation = Decimal(0)
    epoch: PydanticObjectId | None = None
    deleting: bool = False
    createdAt: datetime
    updatedAt: datetime

    class Settings:
        name = "chat_sessions"
        indexes = [
            IndexModel(
                [("userId", ASCENDING), ("sessionId", ASCENDING)],
                name="user_session_unique",
                unique=True,
            ),
            IndexModel(
                [("userId", ASCENDING), ("updatedAt", DESCENDING), ("_id", DESCENDING)],
                name="user_updated",
            ),
        ]
