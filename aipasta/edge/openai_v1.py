"""An OpenAI-compatible API (`/v1/...`): any OpenAI SDK or tool can use the gateway.

Each endpoint is the GraphQL field of the same job, called through aipasta.edge.adapters
(same API keys / JWTs as `Authorization: Bearer`, rate budget, stream cap, checks, usage
records and history):

- `GET /v1/models`, `GET /v1/models/{id}`: the catalog (`modelCatalog`, `model`), ids as
  GraphQL spells them (`openrouter:mistralai/mistral-7b-instruct`; a bare upstream id
  works too). Public like the catalog, but a credential that is sent and refused is 401.
- `POST /v1/chat/completions`: the `chat` mutation, or with `"stream": true` the
  `chatStream` subscription as OpenAI's `chat.completion.chunk` events, the usage chunk
  when `stream_options.include_usage`, then `data: [DONE]`. Messages with text and
  `image_url` parts; `temperature`, `top_p`, `max_tokens` / `max_completion_tokens`,
  `stop`, `seed`; fallbacks as OpenRouter's `models` array or a `fallbacks` field;
  `session_id` saves the exchange to that history session. `usage.cost` is the answer's
  cost in USD, as OpenRouter reports it.
  Not yet (the GraphQL chat input has no field for them, so they are refused with a 400
  naming the field rather than ignored): `tools`, `tool_choice`, `parallel_tool_calls`,
  tool messages, `response_format`, `reasoning_effort` / `reasoning`, `n` > 1, `logprobs`.
- Errors: `{"error": {"message", "type", "param", "code"}}`, `code` the ErrorCode in
  lower case (`model_not_found`, `rate_limited`, ...), with its HTTP status.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Literal

import strawberry
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aipasta.edge.adapters import (
    Call,
    Failure,
    adapter_endpoint,
    event_error,
    failure_of,
    masked,
    snake_case,
)
from resolvers.catalog import fields as catalog_fields
from resolvers.chat import fields as chat_fields
from resolvers.chat import stream as stream_fields
from resolvers.errors import BadUserInput, ModelNotFound
from schema.types.catalog import Model
from schema.types.chat import ChatCompleted, ChatDelta, ChatFailed, ChatStreamEvent, Cost, Usage
from schema.types.enums import ChatRole
from schema.types.inputs import AttachmentInput, ChatInput, ChatMessageInput, ChatOptions

DONE = "data: [DONE]\n\n"


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 402:
        return "insufficient_quota"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _param(field: str | None) -> str | None:
    """The request's name for a field the chat input names (`options.maxTokens`)."""
    if field is None:
        return None
    return snake_case(field.removeprefix("options."))


class OpenAIErrors:
    def body(self, failure: Failure) -> dict[str, Any]:
        return {
            "error": {
                "message": failure.message,
                "type": _error_type(failure.status),
                "param": _param(failure.field),
                "code": failure.code.value.lower(),
            }
        }


STYLE = OpenAIErrors()


# --- the request ----------------------------------------------------------------------


class _Body(BaseModel):
    # SDKs send fields this gateway does not know (`user`, `metadata`, ...): ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ImageURL(_Body):
    url: str
    detail: str | None = None


class ImagePart(_Body):
    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Body):
    include_usage: bool = False


# Fields OpenAI's API has that the GraphQL chat input cannot carry yet: refused by name.
NOT_YET = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "reasoning_effort",
    "reasoning",
    "audio",
    "prediction",
    "web_search_options",
)


class Completion(_Body):
    model: str | None = None
    # OpenRouter's fallbacks: the models to try in order (`model`, if given, first).
    models: list[str] | None = None
    fallbacks: list[str] | None = None
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None
    logprobs: bool | None = None
    session_id: str | None = None
    # Refused when set (see NOT_YET); typed loosely so that any value is named, not parsed.
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None
    reasoning_effort: Any = None
    reasoning: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None

    def input(self) -> ChatInput:
        for name in NOT_YET:
            if getattr(self, name) is not None:
                raise BadUserInput(f"`{name}` is not supported by this gateway yet", field=name)
        if self.n is not None and self.n != 1:
            raise BadUserInput("only one choice per request: `n` must be 1", field="n")
        if self.logprobs:
            raise BadUserInput("`logprobs` is not supported by this gateway", field="logprobs")
        model, fallbacks = self._models()
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ChatInput(
            model=model,
            fallbacks=fallbacks or None,
            messages=[_message(m, i) for i, m in enumerate(self.messages)],
            options=ChatOptions(
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens
                if self.max_completion_tokens is None
                else self.max_completion_tokens,
                stop=stop,
                seed=self.seed,
            ),
            session_id=None if self.session_id is None else strawberry.ID(self.session_id),
        )

    def _models(self) -> tuple[str, list[str]]:
        listed = list(self.models or [])
        if self.model is None and not listed:
            raise BadUserInput("name a `model`", field="model")
        primary = self.model if self.model is not None else listed.pop(0)
        fallbacks = [m for m in [*listed, *(self.fallbacks or [])] if m != primary]
        return primary, list(dict.fromkeys(fallbacks))


_ROLES = {
    "system": ChatRole.SYSTEM,
    "developer": ChatRole.SYSTEM,
    "user": ChatRole.USER,
    "assistant": ChatRole.ASSISTANT,
}


def _message(message: Message, index: int) -> ChatMessageInput:
    where = f"messages[{index}]"
    if message.role == "tool" or message.tool_call_id is not None:
        raise BadUserInput("tool messages are not supported by this gateway yet", field=where)
    if message.tool_calls:
        raise BadUserInput(
            "assistant tool calls are not supported by this gateway yet",
            field=f"{where}.tool_calls",
        )
    content = message.content
    if content is None or isinstance(content, str):
        return ChatMessageInput(role=_ROLES[message.role], content=content or "")
    texts = [part.text for part in content if isinstance(part, TextPart)]
    images = [
        AttachmentInput(kind="image", url=part.image_url.url)
        for part in content
        if isinstance(part, ImagePart)
    ]
    return ChatMessageInput(
        role=_ROLES[message.role], content="\n".join(texts), attachments=images or None
    )


# --- the answers ----------------------------------------------------------------------


def openai_model(model: Model) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}


def openai_usage(usage: Usage, cost: Cost) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        # OpenRouter's: what the answer cost, in USD (null when the price is unknown).
        "cost": cost.total_cost if cost.known else None,
    }


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


# --- endpoints ------------------------------------------------------------------------


def _refused_credential(call: Call) -> None:
    """The catalog is public, but a key that is sent and refused says so (401)."""
    if call.context.identity is None and call.context.auth_error is not None:
        raise call.context.auth_error


async def list_models(call: Call) -> Response:
    _refused_credential(call)
    catalog = await call.bounded(catalog_fields.model_catalog(call.info))
    return JSONResponse({"object": "list", "data": [openai_model(m) for m in catalog.all]})


async def get_model(call: Call) -> Response:
    _refused_credential(call)
    model_id = call.request.path_params["model_id"]
    model = await call.bounded(catalog_fields.model(call.info, strawberry.ID(model_id)))
    if model is None:
        raise ModelNotFound(f"no model `{model_id}` in the catalog", details={"field": "model"})
    return JSONResponse(openai_model(model))


async def chat_completions(call: Call) -> Response:
    body = call.json(Completion)
    input = body.input()
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return await _stream(call, input, include_usage=include_usage)
    result = await call.bounded(chat_fields.chat(call.info, input))
    return JSONResponse(
        {
            "id": str(result.id),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": result.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": result.message.content,
                        "refusal": None,
                    },
                    "finish_reason": result.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
            "usage": openai_usage(result.usage, result.cost),
        }
    )


async def _stream(call: Call, input: ChatInput, *, include_usage: bool) -> Response:
    events = stream_fields.chat_stream(call.info, input)
    try:
        first = await call.first_event(events)
    except BaseException:
        await events.aclose()
        raise
    if isinstance(first, ChatFailed):
        await events.aclose()
        raise event_error(first)
    return call.event_stream(_chunks(call, first, events, include_usage=include_usage))


async def _chunks(
    call: Call,
    first: ChatStreamEvent,
    events: AsyncGenerator[ChatStreamEvent, None],
    *,
    include_usage: bool,
) -> AsyncIterator[str]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> str:
        return _data(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    async with contextlib.aclosing(events):
        event: ChatStreamEvent | None = first
        started = False
        try:
            while event is not None:
                if isinstance(event, ChatDelta):
                    delta: dict[str, Any] = {"content": event.content}
                    if not started:
                        delta = {"role": "assistant", **delta}
                        started = True
                    yield chunk(event.model, [choice(delta)])
                elif isinstance(event, ChatCompleted):
                    reason = event.finish_reason or "stop"
                    yield chunk(event.model, [choice({}, reason)])
                    if include_usage:
                        yield chunk(event.model, [], usage=openai_usage(event.usage, event.cost))
                elif isinstance(event, ChatFailed):
                    yield _data(STYLE.body(failure_of(event_error(event), call.services)))
                event = await anext(events, None)
        except Exception as exc:  # noqa: BLE001 - told to the client in the stream's shape
            yield _data(STYLE.body(masked(exc, call.services, call.context.request_id)))
    yield DONE


def openai_routes() -> list[Route]:
    return [
        Route(
            "/v1/models", adapter_endpoint(list_models, STYLE, name="v1_models"), methods=["GET"]
        ),
        Route(
            "/v1/models/{model_id:path}",
            adapter_endpoint(get_model, STYLE, name="v1_model"),
            methods=["GET"],
        ),
        Route(
            "/v1/chat/completions",
            adapter_endpoint(chat_completions, STYLE, name="v1_chat_completions"),
            methods=["POST"],
        ),
    ]
