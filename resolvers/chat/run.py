"""One model's answer to one conversation: retries, fallbacks, timing, usage and cost.

`deltas()` streams the answer's text as it arrives. Before the first token a failing
model is retried once (connection error, 5xx, 429; `Retry-After` honoured up to a cap)
and then each fallback is tried in order; after the first token nothing is retried,
because the client has already seen part of an answer. `result()` describes how it
ended, whatever way it ended: completed, failed, or cancelled by the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from providers.chat import ChatProvider, TokenUsage, ToolCall
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

    async def deltas(self) -> AsyncGenerator[str, None]:
        for model in self._models:
            self._model = model
            attempts = retrying(
                attempts=2,  # the first try and, before any token was shown, one retry
                retryable=lambda error: not self._parts and _retry_same_model(error),
                delay=lambda _attempt, error: self._retry_delay(error),
                sleep=self._rules.sleep,
            )
            try:
                async for attempt in attempts:
                    with attempt:
                        try:
                            async for text in self._stream(model):
                                yield text
                        except ProviderError as error:
                            # Its message reaches the client: upstreams echo keys they were sent.
                            error.message = self._redactor.redact(error.message)
                            self._error = error
                            raise
            except ProviderError:
                if self._parts:
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

    async def _stream(self, model: ModelInfo) -> AsyncIterator[str]:
        provider = self._providers.get(model.provider)
        if provider is None:
            raise NoProvider("no chat client for this provider", provider=model.provider)
        request = self._conversation.request_for(model)
        stream = provider.stream_chat(request)
        try:
            async for delta in stream:
                if delta.usage is not None:
                    self._usage = delta.usage
                if delta.finish_reason is not None:
                    self._finish_reason = delta.finish_reason
                if delta.content:
                    if self._first_token_at is None:
                        self._first_token_at = self._monotonic()
                    self._parts.append(delta.content)
                    yield delta.content
        finally:
            # Leaving early (an error, the client gone) must abandon the upstream request now.
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    def result(self, *, cancelled: bool = False) -> RunResult:
        ended = self._ended_at if self._ended_at is not None else self._monotonic()
        content = self.content
        if self._completed and not cancelled:
            status = MessageStatus.COMPLETE
        elif cancelled:
            status = MessageStatus.PARTIAL
        else:
            status = MessageStatus.PARTIAL if content else MessageStatus.FAILED
        usage = self._usage_count(content)
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
            ),
            latency_ms=(ended - self._started) * 1000,
            time_to_first_token_ms=None
            if self._first_token_at is None
            else (self._first_token_at - self._started) * 1000,
            error=None if self._error is None or cancelled else UpstreamFailure(self._error),
        )

    def _usage_count(self, content: str) -> TokenUsage:
        if self._usage is not None:
            return TokenUsage(
                prompt_tokens=self._usage.prompt_tokens,
                completion_tokens=self._usage.completion_tokens,
                total_tokens=self._usage.total_tokens
                or self._usage.prompt_tokens + self._usage.completion_tokens,
                cost=self._usage.cost,
            )
        if not content and not self._completed:
            # Nothing was generated: an upstream that failed before answering bills nothing.
            return TokenUsage(0, 0, 0)
        # No counts from upstream (cancelled, or a server that never sends usage).
        prompt = estimate_prompt_tokens(self._conversation.request_for(self._model).messages)
        completion = estimate_tokens(content) if content else 0
        return TokenUsage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            estimated=True,
        )
