"""After a run ends: one usage record, and (with a session) the exchange saved to history.

Both happen once per model run, at the end, never per token. The user's message is
saved once per request, before the first answer, with the time the request started,
so history shows it above the answers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from documents.errors import DatabaseUnavailable
from documents.history import ChatMessage, MessageUsage, StoredAttachment
from documents.usage import UsageStatus
from resolvers.chat_input import Conversation
from resolvers.chat_run import RunResult, RunStatus
from resolvers.context import Services
from resolvers.enums import ChatRole, MessageStatus
from resolvers.history import PREVIEW_CHARS, TITLE_CHARS, summarize
from resolvers.history_store import HistoryStore
from resolvers.usage_recorder import UsageEntry

log = logging.getLogger(__name__)

HISTORY_STATUS = {
    RunStatus.COMPLETE: MessageStatus.COMPLETE,
    RunStatus.PARTIAL: MessageStatus.PARTIAL,
    RunStatus.CANCELLED: MessageStatus.PARTIAL,
    RunStatus.FAILED: MessageStatus.FAILED,
}


USAGE_STATUS: dict[RunStatus, UsageStatus] = {
    RunStatus.COMPLETE: "complete",
    RunStatus.PARTIAL: "partial",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.FAILED: "failed",
}


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
        self._user_saved = False
        self._lock = asyncio.Lock()

    @property
    def request_id(self) -> str:
        return self._request_id

    async def finish(self, result: RunResult) -> str | None:
        """Record usage and save the answer; the saved answer's id, if it was saved."""
        self._record(result)
        if self._conversation.session_id is None:
            return None
        try:
            return await self._save(result)
        except DatabaseUnavailable:
            # The answer already reached the client; losing its copy is logged, not raised.
            log.warning("answer %s not saved to history: database unavailable", result.id)
            return None

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
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                total_tokens=result.usage.total_tokens,
                estimated=result.usage.estimated,
                cost=result.cost.total_cost,
                cost_known=result.cost.known,
                latency_ms=result.latency_ms,
                time_to_first_token_ms=result.time_to_first_token_ms,
                status=USAGE_STATUS[result.status],
                error_code=result.error_code.value if result.error_code else None,
                created_at=datetime.now(UTC),
            )
        )

    async def _save(self, result: RunResult) -> str | None:
        database = self._services.database
        if database is None:
            raise DatabaseUnavailable()
        store = HistoryStore(database)
        session_id = self._conversation.session_id
        assert session_id is not None
        async with self._lock:
            if not self._user_saved:
                await self._save_user_message(store, session_id)
                self._user_saved = True
        answer = ChatMessage(
            userId=self._user_id,
            sessionId=session_id,
            content=result.content,
            isUser=False,
            role=ChatRole.ASSISTANT.value,
            model=result.model.id,
            timestamp=datetime.now(UTC),
            cost=float(result.cost.total_cost),
            modelCount=self._model_count,
            status=HISTORY_STATUS[result.status].value,
            usage=MessageUsage(
                promptTokens=result.usage.prompt_tokens,
                completionTokens=result.usage.completion_tokens,
                totalTokens=result.usage.total_tokens,
                estimated=result.usage.estimated,
            ),
            createdAt=datetime.now(UTC),
        )
        saved = await store.save(
            answer, preview=summarize(result.content, PREVIEW_CHARS), title=None
        )
        return str(saved.id)

    async def _save_user_message(self, store: HistoryStore, session_id: str) -> None:
        message = self._conversation.last_user_message
        if message is None:
            return
        await store.save(
            ChatMessage(
                userId=self._user_id,
                sessionId=session_id,
                content=message.content,
                isUser=True,
                role=ChatRole.USER.value,
                timestamp=self._started_at,
                attachments=[
                    StoredAttachment(kind=a.kind, url=a.url, name=a.name, mimeType=a.mime_type)
                    for a in message.attachments
                ],
                modelCount=self._model_count,
                status=MessageStatus.COMPLETE.value,
                createdAt=self._started_at,
            ),
            preview=summarize(message.content, PREVIEW_CHARS),
            title=summarize(message.content, TITLE_CHARS) or None,
        )
