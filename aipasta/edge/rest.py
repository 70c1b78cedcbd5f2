"""The seed's REST API (`/api/...`), so its Next.js frontend keeps working unchanged.

Each endpoint is the GraphQL field of the same job, called through aipasta.edge.adapters
(same sign-in, rate budget, stream cap, checks, usage records and history):

- `GET /api/models`: `modelCatalog`, in the seed's JSON;
- `POST /api/chat`: the `chat` mutation, or with `"stream": true` the `chatStream`
  subscription as Server-Sent Events (`data: {json}` chunks, then `data: [DONE]`);
- `GET /api/chat-history?sessionId=...&limit=50`: `chatHistory` (a session with no
  messages yet answers an empty list, as the seed did);
  `GET /api/chat-history?sessions=true&limit=20`: `chatSessions`;
  `POST /api/chat-history`: `saveMessage`.
  A `userId` (query or body) is accepted only when it is the signed-in user's
  (FORBIDDEN otherwise); identity always comes from the credentials. With
  `AIPASTA_AUTH=off` nobody signs in and `userId` is ignored.
- Errors: `{"success": false, "error": <what failed>, "details": <why>, "code": <ErrorCode>}`
  with the code's HTTP status (429 and an upstream's 429 with `Retry-After`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import strawberry
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aipasta.edge.adapters import (
    Call,
    Failure,
    adapter_endpoint,
    sse_data,
)
from aipasta.settings import AuthMode
from resolvers.catalog import fields as catalog_fields
from resolvers.chat import fields as chat_fields
from resolvers.errors import BadUserInput, Forbidden, NotFound
from resolvers.history import fields as history_fields
from schema.types.catalog import Model
from schema.types.chat import ChatCompleted, ChatDelta, ChatStreamEvent, Cost, Usage
from schema.types.enums import ChatRole, ErrorCode
from schema.types.history import ChatMessage, ChatSession
from schema.types.inputs import (
    AttachmentInput,
    ChatInput,
    ChatMessageInput,
    ChatOptions,
    SaveMessageInput,
)

# What failed, per code: the seed's `error`; `details` says why.
_TITLES: dict[ErrorCode, str] = {
    ErrorCode.BAD_USER_INPUT: "Invalid request",
    ErrorCode.UNAUTHENTICATED: "Authentication required",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.MODEL_NOT_FOUND: "Model not found",
    ErrorCode.RATE_LIMITED: "Rate limit exceeded",
    ErrorCode.PROVIDER_ERROR: "AI provider error",
    ErrorCode.PROVIDER_UNAVAILABLE: "AI provider unavailable",
    ErrorCode.PROVIDER_TIMEOUT: "AI provider timed out",
    ErrorCode.PROVIDER_RATE_LIMITED: "AI provider rate limited",
    ErrorCode.INSUFFICIENT_CREDITS: "Insufficient credits",
    ErrorCode.CONTENT_FILTERED: "Content filtered",
    ErrorCode.DATABASE_UNAVAILABLE: "Database unavailable",
    ErrorCode.TIMEOUT: "Request timed out",
    ErrorCode.SERVICE_UNAVAILABLE: "Service unavailable",
    ErrorCode.INTERNAL: "Internal server error",
}
TOO_LARGE = "Request body too large"


class SeedErrors:
    """The seed's error body."""

    def body(self, failure: Failure) -> dict[str, Any]:
        title = TOO_LARGE if failure.status == 413 else _TITLES.get(failure.code, "Error")
        return {
            "success": False,
            "error": title,
            "details": failure.message,
            "code": failure.code.value,
        }


STYLE = SeedErrors()


class _Body(BaseModel):
    # Strict: a number where text belongs is refused, not turned into text.
    model_config = ConfigDict(strict=True, extra="ignore")


class SeedAttachment(_Body):
    kind: str = "image"
    url: str
    name: str | None = None
    mimeType: str | None = None

    def input(self) -> AttachmentInput:
        return AttachmentInput(
            kind=self.kind, url=self.url, name=self.name, mime_type=self.mimeType
        )


class SeedMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str
    attachments: list[SeedAttachment] | None = None


class SeedOptions(_Body):
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None


class SeedChat(_Body):
    model: str
    messages: list[SeedMessage]
    stream: bool = False
    options: SeedOptions | None = None
    # Beyond the seed: save the exchange (and a cancelled stream's partial answer).
    sessionId: str | None = None

    def input(self) -> ChatInput:
        options = self.options
        return ChatInput(
            model=self.model,
            messages=[
                ChatMessageInput(
                    role=ChatRole(m.role),
                    content=m.content,
                    attachments=None
                    if m.attachments is None
                    else [a.input() for a in m.attachments],
                )
                for m in self.messages
            ],
            options=None
            if options is None
            else ChatOptions(
                temperature=options.temperature,
                max_tokens=options.max_tokens,
                top_p=options.top_p,
                stop=options.stop,
                seed=options.seed,
            ),
            session_id=None if self.sessionId is None else strawberry.ID(self.sessionId),
        )


class SeedSavedMessage(_Body):
    content: str
    isUser: bool
    # An ISO 8601 string (what JSON.stringify makes of a Date) or epoch seconds/ms.
    timestamp: Annotated[datetime | None, Field(strict=False)] = None
    attachments: list[SeedAttachment] | None = None
    cost: float | None = None
    modelCount: int | None = None
    model: str | None = None


class SeedSave(_Body):
    sessionId: str
    message: SeedSavedMessage
    userId: str | None = None


# --- shapes ---------------------------------------------------------------------------


def _per_token(per_million: float | None) -> str | None:
    """USD per token as a decimal string, as OpenRouter's listing (the seed's source) has it."""
    if per_million is None:
        return None
    return format((Decimal(repr(per_million)) / 1_000_000).normalize(), "f")


def seed_model(model: Model) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "provider": model.provider,
        "description": model.description,
        "context_length": model.context_length,
        "pricing": {
            "prompt": _per_token(model.pricing.prompt_per_million),
            "completion": _per_token(model.pricing.completion_per_million),
        },
        "modalities": {
            "input": list(model.input_modalities),
            "output": list(model.output_modalities),
        },
        "isFree": model.free,
        "isMultimodal": model.multimodal,
    }


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _cost(cost: Cost) -> dict[str, float]:
    return {
        "inputCost": cost.input_cost,
        "outputCost": cost.output_cost,
        "totalCost": cost.total_cost,
    }


def _time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def seed_message(message: ChatMessage, user_id: str) -> dict[str, Any]:
    return {
        "_id": message.id,
        "sessionId": message.session_id,
        "userId": user_id,
        "content": message.content,
        "isUser": message.is_user,
        "timestamp": _time(message.timestamp),
        "attachments": [
            {"kind": a.kind, "url": a.url, "name": a.name, "mimeType": a.mime_type}
            for a in message.attachments
        ],
        "cost": message.cost,
        "modelCount": message.model_count,
        "model": message.model,
        "status": message.status.value,
    }


def seed_session(session: ChatSession) -> dict[str, Any]:
    return {
        "sessionId": session.id,
        "title": session.title,
        "lastMessage": session.last_message,
        "messageCount": session.message_count,
        "totalCost": session.total_cost,
        "createdAt": _time(session.created_at),
        "updatedAt": _time(session.updated_at),
    }


# --- endpoints ------------------------------------------------------------------------


async def models(call: Call) -> Response:
    catalog = await call.bounded(catalog_fields.model_catalog(call.info))
    by_provider: dict[str, list[dict[str, Any]]] = {"openrouter": [], "huggingface": []}
    for group in catalog.by_provider:
        by_provider[group.provider] = [seed_model(m) for m in group.models]
    stats = catalog.stats
    return JSONResponse(
        {
            "success": True,
            "cached": catalog.cached,
            "models": {
                "all": [seed_model(m) for m in catalog.all],
                "multimodal": [seed_model(m) for m in catalog.multimodal],
                "textOnly": [seed_model(m) for m in catalog.text_only],
                "free": [seed_model(m) for m in catalog.free],
                "paid": [seed_model(m) for m in catalog.paid],
                "byProvider": by_provider,
            },
            "stats": {
                "total": stats.total,
                "multimodal": stats.multimodal,
                "free": stats.free,
                "paid": stats.paid,
            },
        }
    )


async def chat(call: Call) -> Response:
    body = call.json(SeedChat)
    if body.stream:
        return await _chat_stream(call, body.input())
    result = await call.bounded(chat_fields.chat(call.info, body.input()))
    return JSONResponse(
        {
            "choices": [{"message": {"role": "assistant", "content": result.message.content}}],
            "usage": _usage(result.usage),
            "cost": _cost(result.cost),
        }
    )


async def _chat_stream(call: Call, input: ChatInput) -> Response:
    first, events = await call.chat_events(input)
    return call.event_stream(_seed_chunks(call, first, events))


def _seed_chunks(
    call: Call, first: ChatStreamEvent, events: AsyncGenerator[ChatStreamEvent, None]
) -> AsyncIterator[str]:
    def render(event: ChatStreamEvent) -> Iterator[str]:
        if isinstance(event, ChatDelta):
            yield sse_data({"choices": [{"delta": {"content": event.content}}]})
        elif isinstance(event, ChatCompleted):
            yield sse_data(
                {
                    "choices": [{"delta": {}, "finish_reason": event.finish_reason or "stop"}],
                    "usage": _usage(event.usage),
                    "cost": _cost(event.cost),
                }
            )

    return call.event_chunks(STYLE, first, events, render)


def _query_int(params: QueryParams, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadUserInput(f"`{name}` must be a whole number", field=name) from None


def _check_user(call: Call, user_id: str | None) -> str:
    """The signed-in user; a `userId` naming anyone else is FORBIDDEN."""
    identity = call.context.require_user()
    if (
        user_id is not None
        and call.services.settings.auth is not AuthMode.OFF
        and user_id != identity.user_id
    ):
        raise Forbidden(
            "`userId` must be the signed-in user's: identity comes from the credentials"
        )
    return identity.user_id


async def history(call: Call) -> Response:
    params = call.request.query_params
    user_id = _check_user(call, params.get("userId"))
    limit = _query_int(params, "limit")
    if params.get("sessions", "").lower() == "true":
        page = await call.bounded(
            history_fields.chat_sessions(
                call.info, first=history_fields.DEFAULT_SESSIONS_PAGE if limit is None else limit
            )
        )
        return JSONResponse({"success": True, "sessions": [seed_session(s) for s in page.nodes]})
    session_id = params.get("sessionId")
    if not session_id:
        raise BadUserInput("name a session (`sessionId=...`) or ask for `sessions=true`")
    try:
        messages = await call.bounded(
            history_fields.chat_history(
                call.info,
                strawberry.ID(session_id),
                last=history_fields.DEFAULT_HISTORY_PAGE if limit is None else limit,
            )
        )
    except NotFound:
        nodes: list[ChatMessage] = []  # a new session: nothing saved yet
    else:
        nodes = messages.nodes
    return JSONResponse({"success": True, "messages": [seed_message(m, user_id) for m in nodes]})


async def save(call: Call) -> Response:
    body = call.json(SeedSave)
    user_id = _check_user(call, body.userId)
    message = body.message
    saved = await call.bounded(
        history_fields.save_message(
            call.info,
            SaveMessageInput(
                session_id=strawberry.ID(body.sessionId),
                content=message.content,
                is_user=message.isUser,
                timestamp=message.timestamp,
                attachments=None
                if message.attachments is None
                else [a.input() for a in message.attachments],
                cost=message.cost,
                model_count=message.modelCount,
                model=message.model,
            ),
        )
    )
    return JSONResponse(
        {"success": True, "messageId": saved.id, "message": seed_message(saved, user_id)}
    )


def rest_routes() -> list[Route]:
    return [
        Route("/api/models", adapter_endpoint(models, STYLE, name="api_models"), methods=["GET"]),
        Route("/api/chat", adapter_endpoint(chat, STYLE, name="api_chat"), methods=["POST"]),
        Route(
            "/api/chat-history",
            adapter_endpoint(history, STYLE, name="api_chat_history"),
            methods=["GET"],
        ),
        Route(
            "/api/chat-history",
            adapter_endpoint(save, STYLE, name="api_chat_history_save"),
            methods=["POST"],
        ),
    ]
