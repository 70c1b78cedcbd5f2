"""After a run ends: one usage record, and (with a session) the exchange saved to history.

Both happen once per model run, at the end, never per token. The user's message is
saved once per request, before the first answer, with the time the request started,
so history shows it above the answers.

The answer reaches the client whatever happens to its copy: when MongoDB is away (or
was never reached), the history write waits in the services' HistoryBacklog and is made
when it is back, the user's message first; the client is told `messageId: null`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from documents.errors import DatabaseUnavailable
from documents.history import ChatMessage, StoredAttachment
from resolvers.chat.inputs import Conversation
from resolvers.chat.run import RunResult
from resolvers.context import Services
from resolvers.history.backlog import NOT_NOW
from resolvers.history.fields import PREVIEW_CHARS, TITLE_CHARS, summarize
from resolvers.history.store import HistoryStore
from resolvers.usage.recorder import UsageEntry
from schema.types.enums import ChatRole, MessageStatus

log = logging.getLogger(__name__)


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
            createdAt=answered_at,
        )
        # A failed answer with no text keeps the session's last message.
        saved = await store.save(
            answer, preview=summarize(result.content, PREVIEW_CHARS) or None, title=None
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
