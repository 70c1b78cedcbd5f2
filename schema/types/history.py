"""Chat history types."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.types.chat import ToolCall
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
    reasoning: str | None = strawberry.field(
        default=None,
        description=(
            "An answer's reasoning, when the model gave some and the request did not exclude it."
        ),
    )
    reasoning_details: JSON | None = strawberry.field(
        default=None,
        description=(
            "An answer's structured reasoning items, to pass back unchanged in the next "
            "turn of a tool loop; null when there were none."
        ),
    )
    tool_calls: list[ToolCall] = strawberry.field(
        default_factory=list, description="The tool calls an answer asked for."
    )
    tool_call_id: str | None = strawberry.field(
        default=None, description="A TOOL turn: the id of the tool call it answers."
    )
    generation_id: str | None = strawberry.field(
        default=None, description="The upstream's id of the generation that gave an answer."
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
