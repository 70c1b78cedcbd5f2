"""Chat history types."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.types.enums import ChatRole, MessageStatus
from schema.types.page import PageInfo


@strawberry.type
class Attachment:
    kind: str
    url: str
    name: str | None
    mime_type: str | None


@strawberry.type
class ChatMessage:
    id: strawberry.ID
    session_id: strawberry.ID
    content: str
    is_user: bool
    role: ChatRole
    model: str | None
    timestamp: datetime
    attachments: list[Attachment]
    cost: float | None
    model_count: int | None
    status: MessageStatus
    error_code: str | None = strawberry.field(
        description="For a FAILED answer: its error code, e.g. PROVIDER_UNAVAILABLE."
    )
    error: str | None = strawberry.field(
        description="For a FAILED answer: what went wrong (secrets redacted)."
    )


@strawberry.type
class ChatSession:
    id: strawberry.ID
    title: str
    message_count: int
    last_message: str | None
    total_cost: float
    created_at: datetime
    updated_at: datetime


@strawberry.type
class ChatSessionConnection:
    nodes: list[ChatSession]
    page_info: PageInfo


@strawberry.type
class ChatMessageConnection:
    nodes: list[ChatMessage]
    page_info: PageInfo
