"""Saved chat messages and the per-user sessions that summarise them.

A session id is chosen by the client and is only unique per user, so every lookup
is by (userId, sessionId). The session document carries its own counters, kept up to
date by the same write that saves a message, so listing sessions never reads messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from beanie import Document
from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, IndexModel

MessageRole = Literal["system", "user", "assistant"]
MessageState = Literal["COMPLETE", "PARTIAL", "FAILED"]


class StoredAttachment(BaseModel):
    kind: str
    url: str
    name: str | None = None
    mimeType: str | None = None


class MessageUsage(BaseModel):
    """Token counts of an answer; `estimated` when the provider reported none."""

    promptTokens: int | None = None
    completionTokens: int | None = None
    totalTokens: int | None = None
    estimated: bool = False


class ChatMessage(Document):
    userId: str
    sessionId: str
    content: str
    isUser: bool
    role: MessageRole
    model: str | None = None
    timestamp: datetime
    attachments: list[StoredAttachment] = []
    cost: float | None = None
    modelCount: int | None = None
    status: MessageState = "COMPLETE"
    usage: MessageUsage | None = None
    createdAt: datetime

    class Settings:
        name = "chat_messages"
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
    totalCost: float = 0.0
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
