"""The history fields: `chatHistory`, `chatSessions`, `saveMessage`, `deleteChatSession`,
`renameChatSession`.

Each acts for the signed-in user only (never a user id from the arguments), checks all
input before any database work, and treats another user's session exactly like a
missing one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

import strawberry
from bson import ObjectId
from bson.errors import InvalidId
from strawberry.scalars import JSON

from documents import history as stored
from documents.database import Database
from resolvers.context import Info
from resolvers.cursor import decode_cursor, encode_cursor
from resolvers.errors import BadUserInput, DatabaseUnavailableError, NotFound
from resolvers.history.store import HistoryStore, Page, Position
from resolvers.validation import (
    check_attachments,
    check_cost,
    check_int_range,
    check_optional_text,
    check_page_size,
    check_session_id,
    check_text,
    check_timestamp,
)
from schema.types.chat import ToolCall
from schema.types.enums import ChatRole, MessageStatus
from schema.types.history import (
    Attachment,
    ChatMessage,
    ChatMessageConnection,
    ChatSession,
    ChatSessionConnection,
)
from schema.types.inputs import SaveMessageInput
from schema.types.page import PageInfo

DEFAULT_HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 200
DEFAULT_SESSIONS_PAGE = 20
MAX_SESSIONS_PAGE = 100
TITLE_CHARS = 80
MAX_TITLE_CHARS = 200
PREVIEW_CHARS = 200
MAX_MODEL_CHARS = 400
MAX_MODEL_COUNT = 100
UNTITLED = "New chat"
# MongoDB refuses documents over 16 MiB; keep a message (attachments inlined as data:
# URLs) well under it so an oversized one is BAD_USER_INPUT rather than an internal error.
MAX_MESSAGE_BYTES = 15 * 1024 * 1024

MESSAGE_CURSOR = "msg"
SESSION_CURSOR = "session"
SESSION_NOT_FOUND = "chat session not found"

log = logging.getLogger(__name__)


def summarize(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters at a word boundary if it can be."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rfind(" ")
    return (text[:cut] if cut > 0 else text[:limit]).strip()


def message_of(message: stored.ChatMessage) -> ChatMessage:
    return ChatMessage(
        id=strawberry.ID(str(message.id)),
        session_id=strawberry.ID(message.sessionId),
        content=message.content,
        is_user=message.isUser,
        role=ChatRole(message.role),
        model=message.model,
        timestamp=message.timestamp,
        attachments=[
            Attachment(kind=a.kind, url=a.url, name=a.name, mime_type=a.mimeType)
            for a in message.attachments
        ],
        cost=None if message.cost is None else float(message.cost),
        model_count=message.modelCount,
        status=MessageStatus(message.status),
        error_code=message.errorCode,
        error=message.error,
        reasoning=message.reasoning,
        reasoning_details=_reasoning_details(message),
        tool_calls=[
            ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in message.toolCalls
        ],
        tool_call_id=message.toolCallId,
        generation_id=message.generationId,
    )


def _reasoning_details(message: stored.ChatMessage) -> JSON | None:
    """The stored JSON text of an answer's reasoning details, as JSON again."""
    if message.reasoningDetails is None:
        return None
    try:
        details = json.loads(message.reasoningDetails)
    except ValueError:
        log.warning("message %s: stored reasoning details are not JSON", message.id)
        return None
    return JSON(details) if isinstance(details, list) else None


def session_of(session: stored.ChatSession) -> ChatSession:
    return ChatSession(
        id=strawberry.ID(session.sessionId),
        title=session.title or UNTITLED,
        message_count=session.messageCount,
        last_message=session.lastMessage,
        total_cost=float(session.totalCost),
        created_at=session.createdAt,
        updated_at=session.updatedAt,
    )


def encode_position(kind: str, at: datetime, id: ObjectId | None) -> str:
    millis = round(at.timestamp() * 1000)
    return encode_cursor(kind, f"{millis}:{id}")


def decode_position(kind: str, cursor: str, *, field: str) -> Position:
    millis, _, id = decode_cursor(kind, cursor, field=field).partition(":")
    try:
        return Position(at=datetime.fromtimestamp(int(millis) / 1000, UTC), id=ObjectId(id))
    except (ValueError, OverflowError, OSError, InvalidId):
        raise BadUserInput(f"`{field}` is not a valid cursor", field=field) from None


def _store(info: Info) -> HistoryStore:
    database: Database | None = info.context.services.database
    # Checked before any document is built: until MongoDB has answered once, Beanie
    # has not initialised the documents and building one would fail as INTERNAL.
    if database is None or not database.available:
        raise DatabaseUnavailableError("the database is unavailable")
    return HistoryStore(database)


def _page_info(cursors: list[str], *, has_next: bool, has_previous: bool) -> PageInfo:
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


async def chat_history(
    info: Info,
    session_id: strawberry.ID,
    last: int | None = DEFAULT_HISTORY_PAGE,
    before: str | None = None,
) -> ChatMessageConnection:
    user_id = info.context.require_user().user_id
    sid = check_session_id(session_id)
    limit = check_page_size(last, "last", default=DEFAULT_HISTORY_PAGE, maximum=MAX_HISTORY_PAGE)
    position = None if before is None else decode_position(MESSAGE_CURSOR, before, field="before")
    store = _store(info)
    session = await store.session(user_id, sid)
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    page: Page[stored.ChatMessage] = await store.messages_before(
        session, last=limit, before=position
    )
    has_newer = position is not None and await store.has_messages_after(session, position)
    nodes = [message_of(m) for m in page.items]
    cursors = [encode_position(MESSAGE_CURSOR, m.timestamp, m.id) for m in page.items]
    return ChatMessageConnection(
        nodes=nodes,
        page_info=_page_info(cursors, has_next=has_newer, has_previous=page.has_more),
    )


async def chat_sessions(
    info: Info, first: int | None = DEFAULT_SESSIONS_PAGE, after: str | None = None
) -> ChatSessionConnection:
    user_id = info.context.require_user().user_id
    limit = check_page_size(
        first, "first", default=DEFAULT_SESSIONS_PAGE, maximum=MAX_SESSIONS_PAGE
    )
    position = None if after is None else decode_position(SESSION_CURSOR, after, field="after")
    page = await _store(info).sessions(user_id, first=limit, after=position)
    nodes = [session_of(s) for s in page.items]
    cursors = [encode_position(SESSION_CURSOR, s.updatedAt, s.id) for s in page.items]
    return ChatSessionConnection(
        nodes=nodes,
        page_info=_page_info(cursors, has_next=page.has_more, has_previous=position is not None),
    )


async def save_message(
    info: Info,
    input: SaveMessageInput,
) -> ChatMessage:
    user_id = info.context.require_user().user_id
    settings = info.context.services.settings
    now = datetime.now(UTC)
    session_id = check_session_id(input.session_id, "input.sessionId")
    content = check_text(input.content, "input.content", settings.max_content_chars)
    attachments = check_attachments(input.attachments, settings, "input.attachments")
    if len(content.encode()) + sum(a.size_bytes for a in attachments) > MAX_MESSAGE_BYTES:
        raise BadUserInput(
            "the message and its attachments are too large to store", field="input.attachments"
        )
    cost = check_cost(input.cost, "input.cost")
    model = check_optional_text(input.model, "input.model", MAX_MODEL_CHARS, strip=True)
    timestamp = check_timestamp(input.timestamp, "input.timestamp", now=now)
    model_count = check_int_range(input.model_count, "input.modelCount", 0, MAX_MODEL_COUNT)
    store = _store(info)
    message = stored.ChatMessage(
        userId=user_id,
        sessionId=session_id,
        content=content,
        isUser=input.is_user,
        role=ChatRole.USER.value if input.is_user else ChatRole.ASSISTANT.value,
        model=model,
        timestamp=timestamp,
        attachments=[
            stored.StoredAttachment(kind=a.kind, url=a.url, name=a.name, mimeType=a.mime_type)
            for a in attachments
        ],
        # From the shortest repr of the float, so 0.2 is stored as exactly 0.2.
        cost=None if cost is None else Decimal(repr(cost)),
        modelCount=model_count,
        status=MessageStatus.COMPLETE.value,
        createdAt=now,
    )
    title = summarize(content, TITLE_CHARS) if input.is_user else ""
    saved = await store.save(
        message, preview=summarize(content, PREVIEW_CHARS), title=title or None
    )
    return message_of(saved)


async def delete_chat_session(info: Info, session_id: strawberry.ID) -> bool:
    user_id = info.context.require_user().user_id
    sid = check_session_id(session_id)
    if not await _store(info).delete_session(user_id, sid):
        raise NotFound(SESSION_NOT_FOUND)
    return True


async def rename_chat_session(info: Info, session_id: strawberry.ID, title: str) -> ChatSession:
    user_id = info.context.require_user().user_id
    sid = check_session_id(session_id)
    title = check_text(title, "title", MAX_TITLE_CHARS, min_len=1, strip=True)
    session = await _store(info).rename_session(user_id, sid, title)
    if session is None:
        raise NotFound(SESSION_NOT_FOUND)
    return session_of(session)
