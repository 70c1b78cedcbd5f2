"""From a run's result to the schema's chat types, which the chat fields return."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry
from strawberry.scalars import JSON

from providers.chat import TokenUsage
from providers.chat import ToolCall as RunToolCall
from providers.pricing import Cost as RunCost
from resolvers.chat.run import RunResult
from schema.types.chat import (
    AssistantMessage,
    ChatCompleted,
    ChatFailed,
    ChatResult,
    CompareError,
    CompareResult,
    Cost,
    ToolCall,
    Usage,
)
from schema.types.enums import ChatRole


def _id(value: str | None) -> strawberry.ID | None:
    return None if value is None else strawberry.ID(value)


def api_usage(usage: TokenUsage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        estimated=usage.estimated,
        reasoning_tokens=usage.reasoning_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def api_tool_calls(calls: Sequence[RunToolCall]) -> list[ToolCall]:
    return [ToolCall(id=call.id, name=call.name, arguments=call.arguments) for call in calls]


def _details(result: RunResult) -> JSON | None:
    """The reasoning items as the upstream sent them; null when there were none."""
    return (
        JSON([dict(item) for item in result.reasoning_details])
        if result.reasoning_details
        else None
    )


def api_cost(cost: RunCost) -> Cost:
    return Cost(
        input_cost=float(cost.input_cost),
        output_cost=float(cost.output_cost),
        total_cost=float(cost.total_cost),
        known=cost.known,
    )


def chat_result(result: RunResult, message_id: str | None) -> ChatResult:
    return ChatResult(
        id=strawberry.ID(result.id),
        model=result.model.id,
        provider=result.model.provider,
        message=AssistantMessage(role=ChatRole.ASSISTANT, content=result.content),
        finish_reason=result.finish_reason,
        usage=api_usage(result.usage),
        cost=api_cost(result.cost),
        latency_ms=result.latency_ms,
        message_id=_id(message_id),
        reasoning=result.reasoning or None,
        reasoning_details=_details(result),
        tool_calls=api_tool_calls(result.tool_calls),
        generation_id=result.generation_id,
    )


def compare_result(model_id: str, result: RunResult, message_id: str | None) -> CompareResult:
    """One model's entry of a comparison."""
    if result.error is None:
        return CompareResult(model=model_id, result=chat_result(result, message_id), error=None)
    return CompareResult(
        model=model_id,
        result=None,
        error=CompareError(
            code=result.error.code,
            message=result.error.message,
            retryable=result.error.retryable,
        ),
    )


def terminal_event(
    requested: str, result: RunResult, message_id: str | None
) -> ChatCompleted | ChatFailed:
    """The one event that ends a model's stream. `requested` is the model the client named."""
    if result.error is None:
        return ChatCompleted(
            model=result.model.id,
            provider=result.model.provider,
            finish_reason=result.finish_reason,
            content=result.content,
            usage=api_usage(result.usage),
            cost=api_cost(result.cost),
            latency_ms=result.latency_ms,
            time_to_first_token_ms=result.time_to_first_token_ms,
            message_id=_id(message_id),
            reasoning=result.reasoning or None,
            reasoning_details=_details(result),
            tool_calls=api_tool_calls(result.tool_calls),
            generation_id=result.generation_id,
        )
    return ChatFailed(
        # Once a fallback produced output, the deltas named it: the failure must match them.
        model=result.model.id
        if result.content or result.reasoning or result.tool_calls
        else requested,
        code=result.error.code,
        message=result.error.message,
        retryable=result.error.retryable,
        partial_content=result.content,
        message_id=_id(message_id),
        partial_reasoning=result.reasoning,
        partial_tool_calls=api_tool_calls(result.tool_calls),
    )
