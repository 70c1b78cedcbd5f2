"""Input types of the contract."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema.types.enums import ChatRole, ReasoningEffort, ResponseFormatType, RoutingSort


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
    supports_tools: bool | None = strawberry.field(
        default=None,
        description=(
            "true: models whose provider says they take tools; false: all others "
            "(including those whose support is unknown)."
        ),
    )
    supports_reasoning: bool | None = strawberry.field(
        default=None,
        description=(
            "true: models whose provider says they can reason; false: all others "
            "(including those whose support is unknown)."
        ),
    )
    output_modality: str | None = strawberry.field(
        default=None, description="text, image, ...: models that can answer in it."
    )


@strawberry.input
class AttachmentInput:
    kind: str = strawberry.field(description="image, file, ...")
    url: str = strawberry.field(description="https URL or data: URL")
    name: str | None = None
    mime_type: str | None = None


@strawberry.input
class ToolCallInput:
    """A tool call of an earlier assistant turn, sent back as the model made it."""

    id: str
    name: str
    arguments: str = strawberry.field(description="The JSON text the model wrote.")


@strawberry.input
class ChatMessageInput:
    role: ChatRole
    content: str
    attachments: list[AttachmentInput] | None = None
    tool_calls: list[ToolCallInput] | None = strawberry.field(
        default=None, description="On an ASSISTANT turn: the tool calls it made."
    )
    tool_call_id: str | None = strawberry.field(
        default=None, description="On a TOOL turn: the id of the call this is the result of."
    )
    reasoning_details: JSON | None = strawberry.field(
        default=None,
        description=(
            "On an ASSISTANT turn: the reasoningDetails its answer came with, passed back "
            "unchanged (thinking models need them to continue a tool loop)."
        ),
    )


@strawberry.input
class ReasoningOptions:
    """Thinking, for models that can: `effort` or `maxTokens`, not both."""

    effort: ReasoningEffort | None = None
    max_tokens: int | None = strawberry.field(
        default=None, description="Tokens the model may spend thinking."
    )
    exclude: bool | None = strawberry.field(
        default=None,
        description="Think, but do not return the reasoning (nor save it to history).",
    )


@strawberry.input
class ResponseFormatInput:
    type: ResponseFormatType
    name: str | None = strawberry.field(
        default=None, description="JSON_SCHEMA: the schema's name (letters, digits, _ and -)."
    )
    schema: JSON | None = strawberry.field(
        default=None, description="JSON_SCHEMA: the JSON Schema (an object) the answer follows."
    )
    strict: bool | None = None


@strawberry.input
class ToolInput:
    """A function the model may call."""

    name: str = strawberry.field(description="1 to 64 of A-Z a-z 0-9 _ -; unique per request.")
    description: str | None = None
    parameters: JSON | None = strawberry.field(
        default=None, description="The function's parameters as a JSON Schema object."
    )


@strawberry.input
class MaxPriceInput:
    """The most to pay, in USD per million tokens."""

    prompt: float | None = None
    completion: float | None = None


@strawberry.input
class RoutingInput:
    """Which of an aggregator's upstream providers may serve the request (OpenRouter's
    provider routing; Hugging Face takes `sort` and a one-provider `order`)."""

    order: list[str] | None = strawberry.field(
        default=None, description="Provider names to try, in order."
    )
    allow_fallbacks: bool | None = None
    sort: RoutingSort | None = None
    max_price: MaxPriceInput | None = None


@strawberry.input
class ChatOptions:
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    reasoning: ReasoningOptions | None = None
    response_format: ResponseFormatInput | None = None
    tools: list[ToolInput] | None = None
    tool_choice: str | None = strawberry.field(
        default=None, description="auto, none, required, or the name of one of `tools`."
    )
    parallel_tool_calls: bool | None = None
    routing: RoutingInput | None = None


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
