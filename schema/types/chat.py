"""Chat result and stream event types."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

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
    reasoning: str | None = strawberry.field(
        default=None, description="The model's reasoning, when it thought aloud."
    )
    reasoning_details: JSON | None = strawberry.field(
        default=None,
        description=(
            "The upstream's structured reasoning items; pass them back unchanged on this "
            "assistant turn (ChatMessageInput.reasoningDetails) to continue a tool loop."
        ),
    )
    tool_calls: list[ToolCall] = strawberry.field(
        default_factory=list,
        description="The functions the model asks to call (finishReason is then tool_calls).",
    )
    generation_id: str | None = strawberry.field(
        default=None, description="The upstream's id of this generation, when it names one."
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
class ChatReasoningDelta:
    model: str
    content: str = strawberry.field(description="A piece of the model's reasoning.")
    index: int = strawberry.field(
        description="Position of this delta among the model's reasoning deltas, from 0."
    )


@strawberry.type
class ChatToolCallDelta:
    model: str
    index: int = strawberry.field(
        description="Position of this delta among the model's tool-call deltas, from 0."
    )
    tool_call_index: int = strawberry.field(
        description="Which call this piece belongs to: its position in the final toolCalls."
    )
    id: str | None = strawberry.field(description="The call's id, on its first delta.")
    name: str | None = strawberry.field(description="The function's name, on its first delta.")
    arguments_delta: str = strawberry.field(
        description="The next piece of the call's arguments (JSON text, concatenated as sent)."
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
    reasoning: str | None = strawberry.field(
        default=None, description="The whole reasoning, when the model thought aloud."
    )
    reasoning_details: JSON | None = strawberry.field(
        default=None,
        description="The upstream's structured reasoning items, to pass back unchanged.",
    )
    tool_calls: list[ToolCall] = strawberry.field(
        default_factory=list, description="The whole tool calls, arguments exact."
    )
    generation_id: str | None = None


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
    partial_reasoning: str = strawberry.field(
        default="", description="The reasoning generated before the failure."
    )
    partial_tool_calls: list[ToolCall] = strawberry.field(
        default_factory=list,
        description="Tool calls as far as they were assembled (arguments may be cut short).",
    )


ChatStreamEvent = Annotated[
    ChatDelta | ChatReasoningDelta | ChatToolCallDelta | ChatCompleted | ChatFailed,
    strawberry.union("ChatStreamEvent"),
]
