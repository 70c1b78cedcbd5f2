"""An OpenAI-compatible API (`/v1/...`): any OpenAI SDK or tool can use the gateway.

Each endpoint is the GraphQL field of the same job, called through aipasta.edge.adapters
(same API keys / JWTs as `Authorization: Bearer`, rate budget, stream cap, checks, usage
records and history):

- `GET /v1/models`, `GET /v1/models/{id}`: the catalog (`modelCatalog`, `model`), ids as
  GraphQL spells them (`openrouter:mistralai/mistral-7b-instruct`; a bare upstream id
  works too). Public like the catalog, but a credential that is sent and refused is 401.
- `POST /v1/chat/completions`: the `chat` mutation, or with `"stream": true` the
  `chatStream` subscription as OpenAI's `chat.completion.chunk` events, the usage chunk
  when `stream_options.include_usage`, then `data: [DONE]`. Each field maps to the
  GraphQL chat input, whose checks refuse what is wrong (the error's `param` is the
  body's name for the field):
  messages with text and `image_url` parts, assistant `tool_calls` and OpenRouter's
  `reasoning_details` (passed back unchanged), `role: "tool"` results with
  `tool_call_id`; `temperature`, `top_p`, `max_tokens` / `max_completion_tokens`,
  `stop`, `seed`; `tools`, `tool_choice` (a mode or `{type: "function", function:
  {name}}`), `parallel_tool_calls`; `response_format` (`text`, `json_object`,
  `json_schema`); `reasoning_effort` or OpenRouter's `reasoning` object (`effort`,
  `max_tokens`, `exclude`, `enabled`); OpenRouter's `provider` routing (`order`,
  `allow_fallbacks`, `sort`, `max_price`); fallbacks as OpenRouter's `models` array or
  a `fallbacks` field; `session_id` saves the exchange to that history session.
  Answers carry `message.tool_calls` (`finish_reason: "tool_calls"`), OpenRouter's
  `message.reasoning` and `reasoning_details`; streamed, `delta.reasoning` and
  `delta.tool_calls` fragments (`index` always; `id`, `type` and `function.name` on a
  call's first; `function.arguments` in pieces). `usage` has
  `completion_tokens_details.reasoning_tokens`, `prompt_tokens_details.cached_tokens`
  (and OpenRouter's `cache_write_tokens`), and `usage.cost`, the answer's cost in USD as
  OpenRouter reports it.
  Not passed on (the chat input has no field for them, and no SDK relies on them
  upstream): a function's `strict` and a JSON schema's `description`.
  Refused with a 400 naming the field rather than ignored (the chat input has nothing
  for them): `n` > 1, `logprobs`, `functions` / `function_call`, `audio`,
  `prediction`, `web_search_options`, and `provider` fields beyond routing.
- Errors: `{"error": {"message", "type", "param", "code"}}`, `code` the ErrorCode in
  lower case (`model_not_found`, `rate_limited`, ...), with its HTTP status.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import strawberry
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aipasta.edge.adapters import (
    Call,
    Failure,
    adapter_endpoint,
    snake_case,
    sse_data,
)
from resolvers.catalog import fields as catalog_fields
from resolvers.chat import fields as chat_fields
from resolvers.errors import BadUserInput, GatewayError, ModelNotFound
from schema.types.catalog import Model
from schema.types.chat import (
    ChatCompleted,
    ChatDelta,
    ChatReasoningDelta,
    ChatResult,
    ChatStreamEvent,
    ChatToolCallDelta,
    Cost,
    ToolCall,
    Usage,
)
from schema.types.enums import ChatRole, ReasoningEffort, ResponseFormatType, RoutingSort
from schema.types.inputs import (
    AttachmentInput,
    ChatInput,
    ChatMessageInput,
    ChatOptions,
    MaxPriceInput,
    ReasoningOptions,
    ResponseFormatInput,
    RoutingInput,
    ToolCallInput,
    ToolInput,
)


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


class FunctionCall(_Body):
    name: str
    arguments: str


class MessageToolCall(_Body):
    """A tool call of an earlier assistant turn, as the API returned it."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    # OpenRouter's: an assistant turn's reasoning items, passed back unchanged.
    reasoning_details: Any = None


class StreamOptions(_Body):
    include_usage: bool = False


class FunctionSpec(_Body):
    name: str
    description: str | None = None
    # A JSON Schema object; checked (shape, depth, size) by the chat input's rules.
    parameters: Any = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(_Body):
    name: str | None = None
    description: str | None = None
    schema_: Any = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


Effort = Literal["xhigh", "high", "medium", "low", "minimal", "none"]


class Reasoning(_Body):
    """OpenRouter's `reasoning` object."""

    effort: Effort | None = None
    max_tokens: int | None = None
    exclude: bool | None = None
    enabled: bool | None = None


class MaxPrice(_Body):
    model_config = ConfigDict(strict=True, extra="forbid")
    prompt: float | None = None
    completion: float | None = None


class ProviderRouting(_Body):
    """OpenRouter's `provider` object, as far as the chat input's routing goes: a field
    it cannot carry (`only`, `ignore`, `data_collection`, ...) is refused, not ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")
    order: list[str] | None = None
    allow_fallbacks: bool | None = None
    sort: Literal["price", "throughput", "latency"] | None = None
    max_price: MaxPrice | None = None
    # The gateway sets it itself whenever a response_format is asked for.
    require_parameters: bool | None = None


# Fields OpenAI's API has that the GraphQL chat input cannot carry: refused by name.
NOT_SUPPORTED = (
    "functions",
    "function_call",
    "audio",
    "prediction",
    "web_search_options",
)

_FORMATS = {
    "text": ResponseFormatType.TEXT,
    "json_object": ResponseFormatType.JSON_OBJECT,
    "json_schema": ResponseFormatType.JSON_SCHEMA,
}


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
    tools: list[Tool] | None = None
    # "auto", "none", "required" (or a tool's name), or OpenAI's named-function object.
    tool_choice: str | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Effort | None = None
    reasoning: Reasoning | None = None
    provider: ProviderRouting | None = None
    # Refused when set (see NOT_SUPPORTED); typed loosely so that any value is named.
    functions: Any = None
    function_call: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None

    def input(self) -> ChatInput:
        for name in NOT_SUPPORTED:
            if getattr(self, name) is not None:
                raise BadUserInput(f"`{name}` is not supported by this gateway", field=name)
        if self.n is not None and self.n != 1:
            raise BadUserInput("only one choice per request: `n` must be 1", field="n")
        if self.logprobs:
            raise BadUserInput("`logprobs` is not supported by this gateway", field="logprobs")
        if self.reasoning_effort is not None and self.reasoning is not None:
            raise BadUserInput(
                "give `reasoning_effort` or `reasoning`, not both", field="reasoning_effort"
            )
        model, fallbacks = self._models()
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return ChatInput(
            model=model,
            fallbacks=fallbacks or None,
            messages=[_message(m) for m in self.messages],
            options=ChatOptions(
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens
                if self.max_completion_tokens is None
                else self.max_completion_tokens,
                stop=stop,
                seed=self.seed,
                reasoning=self._reasoning(),
                response_format=_response_format(self.response_format),
                tools=None
                if self.tools is None
                else [
                    ToolInput(
                        name=tool.function.name,
                        description=tool.function.description,
                        parameters=tool.function.parameters,
                    )
                    for tool in self.tools
                ],
                tool_choice=self.tool_choice
                if self.tool_choice is None or isinstance(self.tool_choice, str)
                else self.tool_choice.function.name,
                parallel_tool_calls=self.parallel_tool_calls,
                routing=_routing(self.provider),
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

    def _reasoning(self) -> ReasoningOptions | None:
        if self.reasoning_effort is not None:
            return ReasoningOptions(effort=ReasoningEffort(self.reasoning_effort))
        given = self.reasoning
        if given is None:
            return None
        effort = given.effort
        if effort is None and given.max_tokens is None and given.enabled is False:
            effort = "none"
        return ReasoningOptions(
            effort=None if effort is None else ReasoningEffort(effort),
            max_tokens=given.max_tokens,
            exclude=given.exclude,
        )

    def param(self, field: str) -> str:
        """The body's name for a field the chat input names (`options.tools[0].name`
        is `tools[0].function.name`)."""
        if self.reasoning_effort is not None and field.startswith("options.reasoning"):
            return "reasoning_effort"
        if self.max_completion_tokens is not None and field == "options.maxTokens":
            return "max_completion_tokens"
        if isinstance(self.stop, str) and field.startswith("options.stop"):
            return "stop"
        match = _ATTACHMENT.fullmatch(field)
        if match is not None:
            return self._attachment_param(int(match[1]), int(match[2]))
        for pattern, replacement in _PARAMS:
            field = pattern.sub(replacement, field)
        return snake_case(field)

    def _attachment_param(self, message: int, attachment: int) -> str:
        """The content part an attachment came from: the chat input numbers the image
        parts, the body numbers all the parts."""
        where = f"messages[{message}].content"
        if message >= len(self.messages):
            return where
        content = self.messages[message].content
        images = [i for i, part in enumerate(content or ()) if isinstance(part, ImagePart)]
        if attachment >= len(images):
            return where
        return f"{where}[{images[attachment]}]"


_ATTACHMENT = re.compile(r"messages\[(\d+)\]\.attachments\[(\d+)\](?:\..*)?")
# From the chat input's field names to the body's, in order.
_PARAMS = [
    (
        re.compile(r"^options\.tools\[(\d+)\]\.(name|description|parameters)"),
        r"tools[\1].function.\2",
    ),
    (
        re.compile(r"^options\.responseFormat\.(name|schema|strict)"),
        r"response_format.json_schema.\1",
    ),
    (re.compile(r"^options\.routing\.maxPrice"), "provider.max_price"),
    (re.compile(r"^options\.routing"), "provider"),
    (re.compile(r"^options\."), ""),
    (re.compile(r"\.toolCalls\[(\d+)\]\.(name|arguments)"), r".tool_calls[\1].function.\2"),
]


def _response_format(given: ResponseFormat | None) -> ResponseFormatInput | None:
    if given is None:
        return None
    spec = given.json_schema
    return ResponseFormatInput(
        type=_FORMATS[given.type],
        name=None if spec is None else spec.name,
        schema=None if spec is None else spec.schema_,
        strict=None if spec is None else spec.strict,
    )


def _routing(given: ProviderRouting | None) -> RoutingInput | None:
    if given is None:
        return None
    return RoutingInput(
        order=given.order,
        allow_fallbacks=given.allow_fallbacks,
        sort=None if given.sort is None else RoutingSort(given.sort),
        max_price=None
        if given.max_price is None
        else MaxPriceInput(prompt=given.max_price.prompt, completion=given.max_price.completion),
    )


_ROLES = {
    "system": ChatRole.SYSTEM,
    "developer": ChatRole.SYSTEM,
    "user": ChatRole.USER,
    "assistant": ChatRole.ASSISTANT,
    "tool": ChatRole.TOOL,
}


def _message(message: Message) -> ChatMessageInput:
    role = _ROLES[message.role]
    tool_calls = (
        None  # `tool_calls: []` is what some clients send on any turn: no calls
        if not message.tool_calls
        else [
            ToolCallInput(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in message.tool_calls
        ]
    )
    content = message.content
    texts: list[str] = []
    images: list[AttachmentInput] = []
    if content is None or isinstance(content, str):
        texts.append(content or "")
    else:
        texts = [part.text for part in content if isinstance(part, TextPart)]
        images = [
            AttachmentInput(kind="image", url=part.image_url.url)
            for part in content
            if isinstance(part, ImagePart)
        ]
    return ChatMessageInput(
        role=role,
        content="\n".join(texts),
        attachments=images or None,
        tool_calls=tool_calls,
        tool_call_id=message.tool_call_id,
        reasoning_details=message.reasoning_details,
    )


# --- the answers ----------------------------------------------------------------------


def openai_model(model: Model) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}


def openai_usage(usage: Usage, cost: Cost) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            # OpenRouter's: prompt tokens written to the provider's prompt cache.
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        # OpenRouter's: what the answer cost, in USD (null when the price is unknown).
        "cost": cost.total_cost if cost.known else None,
    }


def openai_tool_calls(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for call in calls
    ]


def openai_message(result: ChatResult) -> dict[str, Any]:
    """The whole answer's `message`, with OpenRouter's `reasoning` and `reasoning_details`."""
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI's: null when the model only called tools.
        "content": result.message.content or (None if result.tool_calls else ""),
        "refusal": None,
        "reasoning": result.reasoning,
    }
    if result.reasoning_details is not None:
        message["reasoning_details"] = result.reasoning_details
    if result.tool_calls:
        message["tool_calls"] = openai_tool_calls(result.tool_calls)
    return message


def _tool_call_delta(event: ChatToolCallDelta) -> dict[str, Any]:
    """One fragment as OpenAI streams them: `index` always; `id`, `type` and the
    function's `name` on a call's first fragment; `arguments` in pieces."""
    fragment: dict[str, Any] = {"index": event.tool_call_index}
    function: dict[str, Any] = {"arguments": event.arguments_delta}
    if event.id is not None:
        fragment["id"] = event.id
        fragment["type"] = "function"
    if event.name is not None:
        function["name"] = event.name
    fragment["function"] = function
    return fragment


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


def _named_for(body: Completion, error: GatewayError) -> None:
    """Rename the field the chat input's checks named as this body spells it."""
    details = error.details or {}
    field = details.get("field")
    # The chat input's checks name `input.messages[0]...` and `options....`; the body's
    # own checks already name the body's fields.
    if isinstance(field, str) and field.startswith(("input.", "options.")):
        error.details = {**details, "field": body.param(field.removeprefix("input."))}


async def chat_completions(call: Call) -> Response:
    body = call.json(Completion)
    try:
        return await _complete(call, body)
    except GatewayError as error:
        _named_for(body, error)
        raise


async def _complete(call: Call, body: Completion) -> Response:
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
                    "message": openai_message(result),
                    "finish_reason": result.finish_reason or "stop",
                    "logprobs": None,
                }
            ],
            "usage": openai_usage(result.usage, result.cost),
        }
    )


async def _stream(call: Call, input: ChatInput, *, include_usage: bool) -> Response:
    first, events = await call.chat_events(input)
    return call.event_stream(_chunks(call, first, events, include_usage=include_usage))


def _chunks(
    call: Call,
    first: ChatStreamEvent,
    events: AsyncGenerator[ChatStreamEvent, None],
    *,
    include_usage: bool,
) -> AsyncIterator[str]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse_data(
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

    started = False

    def render(event: ChatStreamEvent) -> Iterator[str]:
        nonlocal started
        delta: dict[str, Any] | None = None
        if isinstance(event, ChatDelta):
            delta = {"content": event.content}
        elif isinstance(event, ChatReasoningDelta):
            delta = {"reasoning": event.content}
        elif isinstance(event, ChatToolCallDelta):
            delta = {"tool_calls": [_tool_call_delta(event)]}
        if delta is not None:
            if not started:
                delta = {"role": "assistant", **delta}
                started = True
            yield chunk(event.model, [choice(delta)])
        elif isinstance(event, ChatCompleted):
            if event.reasoning_details is not None:
                # OpenRouter streams these as `delta.reasoning_details`: here they come
                # whole, once, before the finish reason.
                details = {"reasoning_details": event.reasoning_details}
                yield chunk(event.model, [choice(details)])
            reason = event.finish_reason or "stop"
            yield chunk(event.model, [choice({}, reason)])
            if include_usage:
                yield chunk(event.model, [], usage=openai_usage(event.usage, event.cost))

    return call.event_chunks(STYLE, first, events, render)


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
