"""After a run ends: one usage record, and (with a session) the exchange saved to history.

Both happen once per model run, at the end, never per token. The user's message is
saved once per request, before the first answer, with the time the request started,
so history shows it above the answers. In a tool loop the client's new turn is the
tool results that end the conversation: those are saved instead, each with the id of
the call it answers.

An answer is saved with its reasoning (not when the request asked to exclude it), its
reasoning details, tool calls and generation id, each bounded so one garbage answer
cannot make the message too large to store (`bounded_extras`).

The answer reaches the client whatever happens to its copy: when MongoDB is away (or
was never reached), the history write waits in the services' HistoryBacklog and is made
when it is back, the user's message first; the client is told `messageId: null`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from documents.errors import DatabaseUnavailable
from documents.history import ChatMessage, StoredAttachment, StoredToolCall
from providers.chat import ToolCall
from resolvers.chat.inputs import CheckedMessage, Conversation
from resolvers.chat.run import RunResult
from resolvers.context import Services
from resolvers.history.backlog import NOT_NOW
from resolvers.history.fields import PREVIEW_CHARS, TITLE_CHARS, summarize
from resolvers.history.store import HistoryStore
from resolvers.usage.recorder import UsageEntry
from schema.types.enums import ChatRole, MessageStatus

log = logging.getLogger(__name__)

# What one saved answer keeps besides its text, at most. Longer reasoning is cut (it is
# only read); reasoning details over the bound are not kept at all, since they must be
# passed back whole; tool calls past either bound are left out, in their order.
MAX_STORED_REASONING_CHARS = 1_000_000
MAX_STORED_REASONING_DETAILS_BYTES = 1024 * 1024
MAX_STORED_TOOL_CALLS = 128
MAX_STORED_TOOL_CALL_BYTES = 1024 * 1024
MAX_STORED_GENERATION_ID_CHARS = 200


@dataclass(frozen=True, slots=True)
class StoredExtras:
    reasoning: str | None
    reasoning_details: str | None
    tool_calls: list[StoredToolCall]
    generation_id: str | None


def bounded_extras(result: RunResult, *, exclude_reasoning: bool) -> StoredExtras:
    """What of `result`'s reasoning, details, tool calls and generation id is stored."""
    reasoning = None if exclude_reasoning else result.reasoning[:MAX_STORED_REASONING_CHARS]
    generation_id = result.generation_id
    if generation_id is not None and len(generation_id) > MAX_STORED_GENERATION_ID_CHARS:
        log.warning("answer %s: generation id too long, not saved", result.id)
        generation_id = None
    return StoredExtras(
        reasoning=reasoning or None,
        reasoning_details=_details_text(result.id, result.reasoning_details),
        tool_calls=_bounded_tool_calls(result.id, result.tool_calls),
        generation_id=generation_id,
    )


def _details_text(answer: str, details: Sequence[Mapping[str, Any]]) -> str | None:
    if not details:
        return None
    try:
        # No NaN or Infinity: they are not JSON, and the API could not send them back.
        text = json.dumps(list(details), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        log.warning("answer %s: reasoning details are not JSON, not saved", answer)
        return None
    if len(text.encode()) > MAX_STORED_REASONING_DETAILS_BYTES:
        log.warning("answer %s: reasoning details too large, not saved", answer)
        return None
    return text


def _bounded_tool_calls(answer: str, calls: Sequence[ToolCall]) -> list[StoredToolCall]:
    kept: list[StoredToolCall] = []
    size = 0
    for call in calls[:MAX_STORED_TOOL_CALLS]:
        size += len(call.id.encode()) + len(call.name.encode()) + len(call.arguments.encode())
        if size > MAX_STORED_TOOL_CALL_BYTES:
            break
        kept.append(StoredToolCall(id=call.id, name=call.name, arguments=call.arguments))
    if len(kept) < len(calls):
        log.warning(
            "answer %s: %d of %d tool calls too large to save",
            answer,
            len(calls) - len(kept),
            len(calls),
        )
    return kept


def new_turns(conversation: Conversation) -> list[CheckedMessage]:
    """The turns a request adds to history: the tool results that end the conversation
    (a tool loop's next turn, several after parallel calls), else its last user message."""
    messages = conversation.messages
    tools = 0
    while tools < len(messages) and messages[-1 - tools].role is ChatRole.TOOL:
        tools += 1
    if tools:
        return list(messages[-tools:])
    for message in reversed(messages):
        if message.role is ChatRole.USER:
            return [message]
    return []


class ExchangeWriter:
    """Records and saves the outcome of one chat or compare request."""

    def __init__(
        self,
        services: Services,
        *,
        user_id: str,
        request_id: str,
        conversation: Conversation,
        model_count: int,
    ) -> None:
        self._services = services
        self._user_id = user_id
        self._request_id = request_id
        self._conversation = conversation
        self._model_count = model_count
        self._started_at = datetime.now(UTC)
        self._turns_saved = 0
        self._deferred = False
        self._lock = asyncio.Lock()

    @property
    def request_id(self) -> str:
        return self._request_id

    async def finish(self, result: RunResult) -> str | None:
        """Record usage and save the answer; the saved answer's id, if it was saved now.
        Never raises: what cannot be saved now is saved later (or logged)."""
        self._record(result)
        if self._conversation.session_id is None:
            return None
        answered_at = datetime.now(UTC)
        database = self._services.database
        # Behind a deferred user message, an answer waits too: history keeps its order.
        if database is not None and database.available and not self._deferred:
            try:
                return await self._save(result, answered_at)
            except NOT_NOW:
                pass
            except Exception:
                log.exception("answer %s not saved to history", result.id)
                return None
        self._deferred = True
        log.warning("answer %s saved to history later: database unavailable", result.id)
        self._services.history_backlog.defer(
            lambda: self._save(result, answered_at), what=f"answer {result.id}"
        )
        return None

    async def finish_shielded(self, result: RunResult) -> str | None:
        """`finish`, run as background work and shielded: a client leaving now must not
        cut the history write half way, and shutdown still waits for it."""
        saving = self._services.background.spawn(self.finish(result), name=f"finish-{result.id}")
        return await asyncio.shield(saving)

    def finish_later(self, result: RunResult) -> None:
        """For a run whose client is gone: do the same work without anyone waiting."""
        self._services.background.spawn(self.finish(result), name=f"finish-{result.id}")

    def _record(self, result: RunResult) -> None:
        self._services.metrics.run_done(result)
        self._services.usage.record(
            UsageEntry(
                user_id=self._user_id,
                request_id=self._request_id,
                model=result.model.id,
                provider=result.model.provider,
                usage=result.usage,
                cost=result.cost.total_cost,
                cost_known=result.cost.known,
                latency_ms=result.latency_ms,
                time_to_first_token_ms=result.time_to_first_token_ms,
                status=result.status,
                cancelled=result.cancelled,
                error_code=result.error_code.value if result.error_code else None,
                created_at=datetime.now(UTC),
            )
        )

    async def _save(self, result: RunResult, answered_at: datetime) -> str | None:
        database = self._services.database
        # Checked before a document is built: Beanie initialises them on first contact.
        if database is None or not database.available:
            raise DatabaseUnavailable()
        store = HistoryStore(database)
        session_id = self._conversation.session_id
        assert session_id is not None
        async with self._lock:
            await self._save_new_turns(store, session_id)
        reasoning = self._conversation.options.reasoning
        extras = bounded_extras(
            result, exclude_reasoning=reasoning is not None and reasoning.exclude
        )
        answer = ChatMessage(
            userId=self._user_id,
            sessionId=session_id,
            content=result.content,
            isUser=False,
            role=ChatRole.ASSISTANT.value,
            model=result.model.id,
            timestamp=answered_at,
            cost=result.cost.total_cost,
            modelCount=self._model_count,
            status=result.status.value,
            usage=result.usage,
            errorCode=result.error_code.value if result.error_code else None,
            error=(
                None
                if result.error is None
                else self._services.redactor.redact(result.error.message)
            ),
            reasoning=extras.reasoning,
            reasoningDetails=extras.reasoning_details,
            toolCalls=extras.tool_calls,
            generationId=extras.generation_id,
            createdAt=answered_at,
        )
        # A failed answer with no text keeps the session's last message.
        saved = await store.save(
            answer, preview=summarize(result.content, PREVIEW_CHARS) or None, title=None
        )
        return str(saved.id)

    async def _save_new_turns(self, store: HistoryStore, session_id: str) -> None:
        """The request's new turns (`new_turns`), once, in order, before its answers."""
        # Counted: `_save` may be made again from the backlog after some were saved.
        for message in new_turns(self._conversation)[self._turns_saved :]:
            await self._save_turn(store, session_id, message)
            self._turns_saved += 1

    async def _save_turn(
        self, store: HistoryStore, session_id: str, message: CheckedMessage
    ) -> None:
        is_user = message.role is ChatRole.USER
        await store.save(
            ChatMessage(
                userId=self._user_id,
                sessionId=session_id,
                content=message.content,
                isUser=is_user,
                role=message.role.value,
                timestamp=self._started_at,
                attachments=[
                    StoredAttachment(kind=a.kind, url=a.url, name=a.name, mimeType=a.mime_type)
                    for a in message.attachments
                ],
                toolCallId=message.tool_call_id,
                modelCount=self._model_count,
                status=MessageStatus.COMPLETE.value,
                createdAt=self._started_at,
            ),
            # A tool's result neither names the session nor shows as its last message.
            preview=summarize(message.content, PREVIEW_CHARS) if is_user else None,
            title=(summarize(message.content, TITLE_CHARS) or None) if is_user else None,
        )
