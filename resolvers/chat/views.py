"""What the chat fields return: plain data the schema's chat types read."""

from __future__ import annotations

from dataclasses import dataclass

from providers.pricing import Cost
from resolvers.chat.run import RunResult, UsageCount
from schema.types.enums import ChatRole, ErrorCode


@dataclass(frozen=True)
class AssistantMessageView:
    role: ChatRole
    content: str


@dataclass(frozen=True)
class ChatResultView:
    id: str
    model: str
    provider: str
    message: AssistantMessageView
    finish_reason: str | None
    usage: UsageCount
    cost: Cost
    latency_ms: float
    message_id: str | None

    @classmethod
    def of(cls, result: RunResult, message_id: str | None) -> ChatResultView:
        return cls(
            id=result.id,
            model=result.model.id,
            provider=result.model.provider,
            message=AssistantMessageView(role=ChatRole.ASSISTANT, content=result.content),
            finish_reason=result.finish_reason,
            usage=result.usage,
            cost=result.cost,
            latency_ms=result.latency_ms,
            message_id=message_id,
        )


@dataclass(frozen=True)
class CompareErrorView:
    code: ErrorCode
    message: str
    retryable: bool


@dataclass(frozen=True)
class CompareResultView:
    model: str
    result: ChatResultView | None
    error: CompareErrorView | None


@dataclass(frozen=True)
class DeltaEvent:
    model: str
    content: str
    index: int


@dataclass(frozen=True)
class CompletedEvent:
    model: str
    provider: str
    finish_reason: str | None
    content: str
    usage: UsageCount
    cost: Cost
    latency_ms: float
    time_to_first_token_ms: float | None
    message_id: str | None


@dataclass(frozen=True)
class FailedEvent:
    model: str
    code: ErrorCode
    message: str
    retryable: bool
    partial_content: str
    message_id: str | None


def terminal_event(
    requested: str, result: RunResult, message_id: str | None
) -> CompletedEvent | FailedEvent:
    """The one event that ends a model's stream. `requested` is the model the client named."""
    if result.error is None:
        return CompletedEvent(
            model=result.model.id,
            provider=result.model.provider,
            finish_reason=result.finish_reason,
            content=result.content,
            usage=result.usage,
            cost=result.cost,
            latency_ms=result.latency_ms,
            time_to_first_token_ms=result.time_to_first_token_ms,
            message_id=message_id,
        )
    return FailedEvent(
        # Once a fallback produced text, the deltas named it: the failure must match them.
        model=result.model.id if result.content else requested,
        code=result.error.code,
        message=result.error.message,
        retryable=result.error.retryable,
        partial_content=result.content,
        message_id=message_id,
    )
