"""Enumerations shared by resolvers and the schema (which registers them with GraphQL)."""

from __future__ import annotations

from enum import Enum


class ChatRole(Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(Enum):
    COMPLETE = "COMPLETE"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"


class UsageGroupBy(Enum):
    MODEL = "MODEL"
    PROVIDER = "PROVIDER"
    DAY = "DAY"
