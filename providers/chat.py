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
class ReasoningRequest:
    """How much the model should think. `effort` (xhigh|high|medium|low|minimal|none) or
    `max_tokens`, not both; `exclude` asks the upstream to think without returning it."""

    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool = False


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; `parameters` is its JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """`kind` is "text", "json_object" or "json_schema" (then `name` and `schema`)."""

    kind: str
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """Which of an aggregator's upstream providers may serve the request (OpenRouter's
    `provider` object; Hugging Face takes `sort` as a `:cheapest`/`:fastest` suffix and
    a one-provider `order` as `:<provider>`). `max_price` is USD per million tokens."""

    order: tuple[str, ...] = ()
    allow_fallbacks: bool | None = None
    sort: str | None = None  # "price" | "throughput" | "latency"
    max_price_prompt: Decimal | None = None
    max_price_completion: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One completion request; `model` is the upstream's id, `messages` are already
    in OpenAI chat format (content may be a list of parts; assistant turns may carry
    `tool_calls` and `reasoning_details`, tool turns `tool_call_id`)."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    reasoning: ReasoningRequest | None = None
    tools: tuple[ToolSpec, ...] = ()
    # "auto" | "none" | "required", or the name of one tool the model must call.
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    routing: Routing | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts for the whole completion: the one usage value, from the provider
    client through a run's result to the stored usage record and message.

    `cost` is in USD when the upstream reports it (OpenRouter does); `estimated` when the
    upstream reported no counts and these are the gateway's estimate. Reasoning tokens
    are part of the completion tokens; cached and cache-write tokens part of the prompt
    tokens."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal | None = None
    estimated: bool = False
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallFragment:
    """A piece of one tool call as streamed: `index` names the call (several may
    interleave); `id` and `name` come on its first piece, `arguments` in pieces."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A whole tool call; `arguments` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str


class ToolCallAssembler:
    """Whole tool calls from streamed fragments, exactly: arguments are the concatenation
    of a call's pieces in arrival order, never parsed; calls come out in the order they started.

    Fragments of several calls may interleave. A fragment with a new `id` for an index
    whose call already has a different id starts a new call (servers that always send
    index 0 for parallel calls do that)."""

    def __init__(self) -> None:
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._arguments: dict[int, list[str]] = {}
        self._order: list[int] = []
        # Where each upstream index is filed now (moves on when an index is reused).
        self._slot: dict[int, int] = {}

    def add(self, fragments: Sequence[ToolCallFragment]) -> None:
        for fragment in fragments:
            slot = self._slot.get(fragment.index)
            if slot is None or (
                fragment.id is not None and self._ids.get(slot, fragment.id) != fragment.id
            ):
                slot = len(self._order)
                self._slot[fragment.index] = slot
                self._order.append(slot)
                self._arguments[slot] = []
            if fragment.id is not None and slot not in self._ids:
                self._ids[slot] = fragment.id
            if fragment.name is not None:
                # Some servers repeat the name; a later piece never renames a call.
                self._names.setdefault(slot, fragment.name)
            if fragment.arguments:
                self._arguments[slot].append(fragment.arguments)

    def __bool__(self) -> bool:
        return bool(self._order)

    def position(self, index: int) -> int | None:
        """Where the call the last fragment with upstream `index` went to is in calls()."""
        return self._slot.get(index)

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls so far; one without an id gets `call_<n>` (n its position)."""
        return tuple(
            ToolCall(
                id=self._ids.get(slot, f"call_{slot}"),
                name=self._names.get(slot, ""),
                arguments="".join(self._arguments[slot]),
            )
            for slot in self._order
        )


@dataclass(slots=True)
class ChatDelta:
    """A piece of the answer. `content` may be empty when the delta only carries
    reasoning, tool-call pieces, a finish reason or usage. `reasoning_details` are the
    upstream's structured reasoning items, passed back unchanged in later turns.

    (Not frozen: a frozen dataclass takes three times as long to build, and one is built
    per streamed chunk; nothing changes a delta once it is made.)
    """

    content: str
    finish_reason: str | None = None
    usage: TokenUsage | None = None
    upstream_model: str | None = None
    response_id: str | None = None
    reasoning: str = ""
    reasoning_details: tuple[Mapping[str, Any], ...] = ()
    tool_calls: tuple[ToolCallFragment, ...] = ()
    generation_id: str | None = None


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
