"""Chat result and stream event types."""

from __future__ import annotations

from typing import Annotated

import strawberry

from schema.types.enums import ChatRole, ErrorCode


@strawberry.type
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = strawberry.field(
        description="True when the provider reported no counts and they were estimated."
    )
    reasoning_tokens: int = strawberry.field(
        default=0,
        description="Completion tokens the model spent thinking (part of completionTokens).",
    )
    cached_prompt_tokens: int = strawberry.field(
        default=0,
        description="Prompt tokens read from the provider's prompt cache (part of promptTokens).",
    )
    cache_write_tokens: int = strawberry.field(
        default=0,
        description="Prompt tokens written to the provider's prompt cache (part of promptTokens).",
    )


@strawberry.type
class ToolCall:
    """A function call the model asked for."""

    id: str
    name: str
    arguments: str = strawberry.field(
        description="The call's arguments: the JSON text exactly as the model wrote it, unparsed."
    )


@strawberry.type
class Cost:
    input_cost: float
    output_cost: float
    total_cost: float
    known: bool = strawberry.field(
        description="False when the model's price is unknown; the amounts are then 0."
    )


@strawberry.type
class AssistantMessage:
    role: ChatRole
    content: str


@strawberry.type
class ChatResult:
    id: strawberry.ID
    model: str = strawberry.field(
        description="The model that answered (a fallback, if one was used)."
    )
    provider: str
    message: AssistantMessage
    finish_reason: str | None
    usage: Usage
    cost: Cost
    latency_ms: float
    message_id: strawberry.ID | None = strawberry.field(
        description="Id of the saved answer when the input had a sessionId."
    )


@strawberry.type
class CompareError:
    code: ErrorCode
    message: str
    retryable: bool


@strawberry.type
class CompareResult:
    model: str
    result: ChatResult | None
    error: CompareError | None


@strawberry.type
class ChatDelta:
    model: str
    content: str
    index: int = strawberry.field(
        description="Position of this delta in the model's stream, from 0."
    )


@strawberry.type
class ChatCompleted:
    model: str
    provider: str
    finish_reason: str | None
    content: str
    usage: Usage
    cost: Cost
    latency_ms: float
    time_to_first_token_ms: float | None
    message_id: strawberry.ID | None


@strawberry.type
class ChatFailed:
    model: str
    code: ErrorCode
    message: str
    retryable: bool
    partial_content: str = strawberry.field(
        description="What had been generated before the failure."
    )
    message_id: strawberry.ID | None


ChatStreamEvent = Annotated[
    ChatDelta | ChatCompleted | ChatFailed, strawberry.union("ChatStreamEvent")
]
