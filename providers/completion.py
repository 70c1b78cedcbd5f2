"""Reading an OpenAI-compatible completion: stream chunks and whole answers into ChatDeltas.

Every field may be garbage. Wrong types are ignored (a string where a count belongs
counts nothing) unless ignoring them would silently corrupt the answer: a tool-call
piece whose `index` is not a small number cannot be filed with its call, so it is a
`ProviderProtocolError`, like malformed `choices`.

Reasoning comes as `reasoning` (OpenRouter) or `reasoning_content` (DeepSeek, vLLM),
structured reasoning as `reasoning_details` (kept unchanged, to be passed back in later
turns), tool calls as `tool_calls` pieces (streamed) or whole calls (a whole answer,
turned into one fragment per call so both paths end in the same ToolCallAssembler).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from providers.chat import ChatDelta, TokenUsage, ToolCallFragment, content_text
from providers.errors import ProviderProtocolError, error_from_payload

# At most this many reasoning items and tool-call pieces are read from one chunk (or
# one whole answer); real upstreams send one or a few. The rest is ignored.
MAX_REASONING_DETAILS = 64
MAX_TOOL_CALLS = 128
# Tool-call indexes name parallel calls: a few at most, never thousands.
MAX_TOOL_CALL_INDEX = 1023
# Ids and names are short; longer ones are cut (the id only needs to round-trip).
MAX_ID_CHARS = 256
MAX_NAME_CHARS = 256
# Counts beyond this are not token counts.
MAX_TOKENS = 10**12
# The fields of a streamed delta besides its text (and role).
_RICH = frozenset(("reasoning", "reasoning_content", "reasoning_details", "tool_calls"))


def stream_delta(
    chunk: Mapping[str, Any], *, provider: str, generation_id: str | None = None
) -> ChatDelta | None:
    """The delta of one streamed chunk, or None when it carries nothing (a role-only or
    empty delta without usage): such chunks make no events."""
    content = plain_text(chunk)
    if content is not None:
        return text_delta(chunk, content, generation_id)
    if chunk.get("error"):
        raise error_from_payload(provider, chunk)
    message, finish_reason = _first_choice(chunk, "delta", provider)
    if finish_reason == "error":
        raise error_from_payload(provider, chunk)
    delta = _delta(chunk, message, finish_reason, provider, generation_id)
    if not (
        delta.content
        or delta.reasoning
        or delta.reasoning_details
        or delta.tool_calls
        or delta.finish_reason is not None
        or delta.usage is not None
    ):
        return None
    return delta


def text_delta(
    chunk: Mapping[str, Any], content: str, generation_id: str | None
) -> ChatDelta | None:
    """`stream_delta` of a chunk whose `plain_text` is `content`."""
    if not content:
        return None
    return ChatDelta(
        content=content,
        upstream_model=_text(chunk.get("model"), MAX_NAME_CHARS),
        response_id=_text(chunk.get("id"), MAX_ID_CHARS),
        generation_id=generation_id,
    )


def plain_text(chunk: Mapping[str, Any]) -> str | None:
    """The text of a chunk that carries a piece of text and nothing else (most of a
    stream: one choice whose delta has string `content` and maybe a role, no finish
    reason, no usage, no error), possibly empty; None for any other chunk.

    Such a chunk's delta is its text, its model and its id: no number in it is read,
    so it may come from a decoder that reads integers past 64 bits inexactly."""
    choices = chunk.get("choices")
    if type(choices) is not list or not choices:
        return None
    first = choices[0]
    if type(first) is not dict:
        return None
    message = first.get("delta")
    if (
        type(message) is not dict
        or first.get("finish_reason") is not None
        or chunk.get("usage") is not None
        or chunk.get("error")
        or not message.keys().isdisjoint(_RICH)
    ):
        return None
    content = message.get("content")
    return content if type(content) is str else None


def whole_answer(
    answer: Mapping[str, Any], *, provider: str, generation_id: str | None = None
) -> ChatDelta:
    """A whole (non-streamed) answer as one delta; it always finishes."""
    if answer.get("error"):
        raise error_from_payload(provider, answer)
    message, finish_reason = _first_choice(answer, "message", provider)
    return _delta(answer, message, finish_reason or "stop", provider, generation_id)


def _delta(
    chunk: Mapping[str, Any],
    message: Mapping[str, Any],
    finish_reason: str | None,
    provider: str,
    generation_id: str | None,
) -> ChatDelta:
    return ChatDelta(
        content=content_text(message.get("content")),
        finish_reason=finish_reason,
        usage=token_usage(chunk.get("usage")),
        upstream_model=_text(chunk.get("model"), MAX_NAME_CHARS),
        response_id=_text(chunk.get("id"), MAX_ID_CHARS),
        reasoning=_reasoning(message),
        reasoning_details=_reasoning_details(message.get("reasoning_details")),
        tool_calls=_tool_calls(message.get("tool_calls"), provider),
        generation_id=generation_id,
    )


def _first_choice(
    chunk: Mapping[str, Any], key: str, provider: str
) -> tuple[Mapping[str, Any], str | None]:
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return {}, None
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise ProviderProtocolError("the upstream sent malformed `choices`", provider=provider)
    first = choices[0]
    message = first.get(key)
    return (message if isinstance(message, dict) else {}), _text(first.get("finish_reason"))


def _reasoning(message: Mapping[str, Any]) -> str:
    for key in ("reasoning", "reasoning_content"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _reasoning_details(value: object) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value[:MAX_REASONING_DETAILS] if isinstance(item, dict))


def _tool_calls(value: object, provider: str) -> tuple[ToolCallFragment, ...]:
    if not isinstance(value, list):
        return ()
    fragments = []
    for position, item in enumerate(value[:MAX_TOOL_CALLS]):
        if not isinstance(item, dict):
            continue
        index = item.get("index", position)
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index <= MAX_TOOL_CALL_INDEX
        ):
            raise ProviderProtocolError(
                "the upstream sent a tool call with a malformed `index`", provider=provider
            )
        function = item.get("function")
        if not isinstance(function, dict):
            function = {}
        fragments.append(
            ToolCallFragment(
                index=index,
                id=_text(item.get("id"), MAX_ID_CHARS),
                name=_text(function.get("name"), MAX_NAME_CHARS),
                arguments=_arguments(function.get("arguments")),
            )
        )
    return tuple(fragments)


def _arguments(value: object) -> str:
    """The arguments' JSON text; a server that sends them as an object gets them
    written as JSON (there is nothing else to pass through)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return ""


def token_usage(value: object) -> TokenUsage | None:
    """OpenAI's `usage`, with OpenRouter's `cost` and cache-write count; None when absent."""
    if value is None or not isinstance(value, Mapping):
        return None
    prompt = _count(value.get("prompt_tokens"))
    completion = _count(value.get("completion_tokens"))
    total = value.get("total_tokens")
    prompt_details = value.get("prompt_tokens_details")
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    completion_details = value.get("completion_tokens_details")
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_count(total) if total is not None else prompt + completion,
        cost=_cost(value.get("cost")),
        reasoning_tokens=_count(completion_details.get("reasoning_tokens")),
        cached_prompt_tokens=_count(prompt_details.get("cached_tokens")),
        cache_write_tokens=_count(prompt_details.get("cache_write_tokens")),
    )


def _count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKENS:
        return value
    return 0


def _cost(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        # Through str() so 0.1 stays 0.1 instead of its binary float expansion.
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() else None


def _text(value: object, limit: int = MAX_NAME_CHARS) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def header_generation_id(value: str | None) -> str | None:
    """The `X-Generation-Id` header's value, when it looks like an id."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        return None
    return value
