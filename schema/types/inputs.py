"""Input types of the contract."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.types.enums import ChatRole


@strawberry.input
class ModelFilter:
    provider: str | None = None
    free: bool | None = None
    multimodal: bool | None = None
    search: str | None = strawberry.field(
        default=None, description="Matched case-insensitively against id, name and description."
    )
    input_modality: str | None = None
    min_context_length: int | None = None
    max_prompt_price_per_million: float | None = None


@strawberry.input
class AttachmentInput:
    kind: str = strawberry.field(description="image, file, ...")
    url: str = strawberry.field(description="https URL or data: URL")
    name: str | None = None
    mime_type: str | None = None


@strawberry.input
class ChatMessageInput:
    role: ChatRole
    content: str
    attachments: list[AttachmentInput] | None = None


@strawberry.input
class ChatOptions:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None


@strawberry.input
class ChatInput:
    model: str
    fallbacks: list[str] | None = strawberry.field(
        default=None, description="Tried in order when the model fails before its first token."
    )
    messages: list[ChatMessageInput]
    options: ChatOptions | None = None
    session_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=(
            "When set, the last user message and the answer are saved to this session "
            "of the signed-in user."
        ),
    )


@strawberry.input
class CompareInput:
    models: list[str]
    messages: list[ChatMessageInput]
    options: ChatOptions | None = None
    session_id: strawberry.ID | None = None


@strawberry.input
class SaveMessageInput:
    session_id: strawberry.ID
    content: str
    is_user: bool
    timestamp: datetime | None = None
    attachments: list[AttachmentInput] | None = None
    cost: float | None = None
    model_count: int | None = None
    model: str | None = None
