"""One model's answer to one conversation: retries, fallbacks, timing, usage and cost.

`deltas()` streams the answer as it arrives: pieces of its text, of its reasoning and
of its tool calls. Before the first piece a failing model is retried once (connection
error, 5xx, 429; `Retry-After` honoured up to a cap) and then each fallback is tried in
order, each try starting clean; after the first piece nothing is retried, because the
client has already seen part of an answer. `result()` describes how it ended, whatever
way it ended: completed, failed, or cancelled by the client, with what was generated.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from providers.chat import ChatDelta, ChatProvider, TokenUsage, ToolCall, ToolCallAssembler
from providers.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from providers.model import ModelInfo
from providers.pricing import Cost, cost_of, estimate_prompt_tokens, estimate_tokens
from providers.redaction import Redactor
from providers.retry import Sleep, retrying
from resolvers.chat.inputs import Conversation
from resolvers.errors import GatewayError, UpstreamFailure, log_level
from schema.types.enums import ErrorCode, MessageStatus

Monotonic = Callable[[], float]

# The same logger as a failed operation's line.
log = logging.getLogger("aipasta.errors")


class PieceKind(Enum):
    CONTENT = "content"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"


@dataclass(slots=True)
class Piece:
    """A piece of a run's output as it arrived: answer text, reasoning text, or the next
    piece of a tool call's arguments (`tool_call` is the call's position in the result's
    `tool_calls`; its `id` and `name` come on its first piece).

    (Not frozen: a frozen dataclass takes three times as long to build, and one is built
    per streamed piece; nothing changes a piece once it is made.)
    """

    kind: PieceKind
    text: str
    tool_call: int = 0
    id: str | None = None
    name: str | None = None

    def continued_by(self, later: Piece) -> bool:
        """Whether `later` can be appended to this piece without losing anything."""
        return (
            later.kind is self.kind
            and later.tool_call == self.tool_call
            and later.id is None
            and later.name is None
        )


def merge_pieces(pieces: Sequence[Piece]) -> list[Piece]:
    """Runs of pieces that continue each other, each joined into one (order kept)."""
    merged: list[Piece] = []
    for piece in pieces:
        if merged and merged[-1].continued_by(piece):
            merged[-1] = replace(merged[-1], text=merged[-1].text + piece.text)
        else:
            merged.append(piece)
    return merged


# The text-like fields of a reasoning item that a stream sends in pieces.
_DETAIL_PIECES = ("text", "summary", "data")


def add_reasoning_details(whole: list[dict[str, Any]], pieces: Sequence[Mapping[str, Any]]) -> None:
    """File streamed reasoning items into `whole`: a piece with the `index` and `type` of
    an item already there continues it (its text, summary or data appended, fields it
    did not have yet, such as `signature`, added); any other item is kept as it came."""
    for piece in pieces:
        index = piece.get("index")
        same = None
        if isinstance(index, int) and not isinstance(index, bool):
            same = next(
                (
                    item
                    for item in reversed(whole)
                    if item.get("index") == index and item.get("type") == piece.get("type")
                ),
                None,
            )
        if same is None:
            whole.append(dict(piece))
            continue
        for key, value in piece.items():
            if key in _DETAIL_PIECES and isinstance(value, str) and isinstance(same.get(key), str):
                same[key] += value
            else:
                same.setdefault(key, value)


@dataclass(frozen=True)
class RunResult:
    """How one model's run ended; everything the API, history and usage need."""

    id: str
    model: ModelInfo
    # A run the client left before its end (cancelled) is PARTIAL, however far it got.
    status: MessageStatus
    cancelled: bool
    content: str
    finish_reason: str | None
    usage: TokenUsage
    cost: Cost
    latency_ms: float
    time_to_first_token_ms: float | None
    error: GatewayError | None
    # What a thinking or tool-using model gave besides content (kept on failure too).
    reasoning: str = ""
    reasoning_details: tuple[Mapping[str, Any], ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    generation_id: str | None = None

    @property
    def error_code(self) -> ErrorCode | None:
        return None if self.error is None else self.error.code


def log_failed_run(result: RunResult, request_id: str) -> None:
    """One line for a run whose failure the client reads in-band (a ChatFailed event, a
    compare entry), like the line for a failed operation (schema.errors): the code, never
    the message, which can quote the upstream's answer."""
    if result.error is not None:
        code = result.error.code.value
        log.log(log_level(code), "request %s: %s from %s", request_id, code, result.model.id)


@dataclass(frozen=True)
class RetryRules:
    backoff: float = 0.5
    max_wait: float = 5.0
    sleep: Sleep = field(default=asyncio.sleep, compare=False)


def _retry_same_model(error: ProviderError) -> bool:
    return isinstance(error, ProviderUnavailable | ProviderRateLimited)


class NoProvider(ProviderUnavailable):
    pass


class ChatRun:
    def __init__(
        self,
        conversation: Conversation,
        models: Sequence[ModelInfo],
        providers: Mapping[str, ChatProvider],
        *,
        rules: RetryRules,
        monotonic: Monotonic = time.monotonic,
        redactor: Redactor | None = None,
    ) -> None:
        if not models:
            raise ValueError("a run needs at least one model")
        self.id = f"chat-{uuid.uuid4().hex}"
        self._conversation = conversation
        self._models = list(models)
        self._providers = providers
        self._rules = rules
        self._monotonic = monotonic
        self._started = monotonic()
        self._first_token_at: float | None = None
        self._ended_at: float | None = None
        self._parts: list[str] = []
        self._reasoning: list[str] = []
        self._tool_calls = ToolCallAssembler()
        # What one try brought besides the pieces the client sees; a retry starts clean.
        self._details: list[dict[str, Any]] = []
        self._generation_id: str | None = None
        self._model = self._models[0]
        self._usage: TokenUsage | None = None
        self._finish_reason: str | None = None
        self._error: ProviderError | None = None
        self._completed = False
        self._redactor = redactor or Redactor()

    @property
    def model(self) -> ModelInfo:
        """The model answering now (a fallback once the first one failed)."""
        return self._model

    @property
    def content(self) -> str:
        return "".join(self._parts)

    @property
    def _has_output(self) -> bool:
        """Whether the client may have seen part of an answer."""
        return bool(self._parts or self._reasoning or self._tool_calls)

    async def deltas(self) -> AsyncGenerator[Piece, None]:
        for model in self._models:
            self._model = model
            attempts = retrying(
                attempts=2,  # the first try and, before any piece was shown, one retry
                retryable=lambda error: not self._has_output and _retry_same_model(error),
                delay=lambda _attempt, error: self._retry_delay(error),
                sleep=self._rules.sleep,
            )
            try:
                async for attempt in attempts:
                    with attempt:
                        try:
                            async for piece in self._stream(model):
                                yield piece
                        except ProviderError as error:
                            # Its message reaches the client: upstreams echo keys they were sent.
                            error.message = self._redactor.redact(error.message)
                            self._error = error
                            raise
            except ProviderError:
                if self._has_output:
                    return  # part of an answer was shown: no retry, no fallback
                continue
            self._completed = True
            self._error = None
            self._ended_at = self._monotonic()
            return
        self._ended_at = self._monotonic()

    def _retry_delay(self, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self._rules.max_wait)
        return self._rules.backoff

    async def _stream(self, model: ModelInfo) -> AsyncIterator[Piece]:
        provider = self._providers.get(model.provider)
        if provider is None:
            raise NoProvider("no chat client for this provider", provider=model.provider)
        request = self._conversation.request_for(model)
        # Only a try before any output comes here again (a retry or a fallback).
        self._details, self._generation_id = [], None
        self._usage, self._finish_reason = None, None
        stream = provider.stream_chat(request)
        try:
            async for delta in stream:
                if delta.generation_id is not None and self._generation_id is None:
                    self._generation_id = delta.generation_id
                if (
                    delta.usage is None
                    and delta.finish_reason is None
                    and not (delta.reasoning or delta.reasoning_details or delta.tool_calls)
                ):
                    # Nearly every delta is a piece of text and nothing else.
                    if delta.content:
                        if self._first_token_at is None:
                            self._first_token_at = self._monotonic()
                        self._parts.append(delta.content)
                        yield Piece(PieceKind.CONTENT, delta.content)
                    continue
                if delta.usage is not None:
                    self._usage = delta.usage
                if delta.finish_reason is not None:
                    self._finish_reason = delta.finish_reason
                if delta.reasoning_details:
                    add_reasoning_details(self._details, delta.reasoning_details)
                for piece in self._pieces(delta):
                    if self._first_token_at is None:
                        self._first_token_at = self._monotonic()
                    yield piece
        finally:
            # Leaving early (an error, the client gone) must abandon the upstream request now.
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    def _pieces(self, delta: ChatDelta) -> list[Piece]:
        """What `delta` adds to the answer, filed into this run's state."""
        pieces: list[Piece] = []
        if delta.reasoning:
            self._reasoning.append(delta.reasoning)
            pieces.append(Piece(PieceKind.REASONING, delta.reasoning))
        if delta.content:
            self._parts.append(delta.content)
            pieces.append(Piece(PieceKind.CONTENT, delta.content))
        for fragment in delta.tool_calls:
            self._tool_calls.add([fragment])
            position = self._tool_calls.position(fragment.index)
            if position is not None and (fragment.arguments or fragment.id or fragment.name):
                pieces.append(
                    Piece(
                        PieceKind.TOOL_CALL,
                        fragment.arguments,
                        tool_call=position,
                        id=fragment.id,
                        name=fragment.name,
                    )
                )
        return pieces

    def result(self, *, cancelled: bool = False) -> RunResult:
        ended = self._ended_at if self._ended_at is not None else self._monotonic()
        content = self.content
        if self._completed and not cancelled:
            status = MessageStatus.COMPLETE
        elif cancelled:
            status = MessageStatus.PARTIAL
        else:
            status = MessageStatus.PARTIAL if self._has_output else MessageStatus.FAILED
        reasoning = "".join(self._reasoning)
        tool_calls = self._tool_calls.calls()
        usage = self._usage_count(content, reasoning, tool_calls)
        return RunResult(
            id=self.id,
            model=self._model,
            status=status,
            cancelled=cancelled,
            content=content,
            finish_reason=self._finish_reason if status is MessageStatus.COMPLETE else None,
            usage=usage,
            cost=cost_of(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                pricing=self._model.pricing,
                reported=usage.cost,
                cached_prompt_tokens=usage.cached_prompt_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            ),
            latency_ms=(ended - self._started) * 1000,
            time_to_first_token_ms=None
            if self._first_token_at is None
            else (self._first_token_at - self._started) * 1000,
            error=None if self._error is None or cancelled else UpstreamFailure(self._error),
            reasoning=reasoning,
            reasoning_details=tuple(self._details),
            tool_calls=tool_calls,
            generation_id=self._generation_id,
        )

    def _usage_count(
        self, content: str, reasoning: str, tool_calls: Sequence[ToolCall]
    ) -> TokenUsage:
        if self._usage is not None:
            return replace(
                self._usage,
                total_tokens=self._usage.total_tokens
                or self._usage.prompt_tokens + self._usage.completion_tokens,
            )
        if not self._has_output and not self._completed:
            # Nothing was generated: an upstream that failed before answering bills nothing.
            return TokenUsage(0, 0, 0)
        # No counts from upstream (cancelled, or a server that never sends usage).
        prompt = estimate_prompt_tokens(self._conversation.request_for(self._model).messages)
        thinking = estimate_tokens(reasoning)
        calls = sum(estimate_tokens(call.name + call.arguments) for call in tool_calls)
        completion = estimate_tokens(content) + thinking + calls
        return TokenUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            estimated=True,
            reasoning_tokens=thinking,
        )
