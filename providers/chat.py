"""What a chat provider is: the request it takes and the deltas it streams back.

Resolvers depend on this protocol only, so the real HTTP client and the scripted fake
used in tests are interchangeable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One completion request; `model` is the upstream's id, `messages` are already
    in OpenAI chat format (content may be a list of parts)."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts for the whole completion: the one usage value, from the provider
    client through a run's result to the stored usage record and message.

    `cost` is in USD when the upstream reports it (OpenRouter does); `estimated` when the
    upstream reported no counts and these are the gateway's estimate."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal | None = None
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """A piece of the answer. `content` may be empty when the delta only carries a
    finish reason or usage."""

    content: str
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    upstream_model: str | None = None
    response_id: str | None = None


class ChatProvider(Protocol):
    """A source of streamed chat completions.

    The stream ends normally after the upstream finished; any failure is raised as a
    `providers.errors.ProviderError`. Closing the iterator early (aclose() or
    cancelling the consuming task) abandons the upstream request.
    """

    name: str

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatDelta]: ...


def content_text(content: object) -> str:
    """The text of an OpenAI-format message content: a string, or the `text` of its parts
    (requests carry parts, and a few servers stream content that way too)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""
