"""Checking a chat input and turning it into upstream requests, before any upstream call.

Everything that can be refused is refused here: unknown models (MODEL_NOT_FOUND),
attachments a model cannot read, options out of range, oversized or invalid text, tool
calls and tool results that do not fit together, tools, reasoning or structured output
asked of a model whose catalog entry says it cannot (BAD_USER_INPUT naming the field).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from aipasta.settings import Settings
from providers.chat import (
    ChatRequest,
    ReasoningRequest,
    ResponseFormat,
    Routing,
    ToolCall,
    ToolSpec,
)
from providers.model import ModelInfo
from resolvers.catalog.service import CatalogView
from resolvers.errors import BadUserInput, ModelNotFound
from resolvers.validation import (
    CheckedAttachment,
    check_attachments,
    check_optional_text,
    check_session_id,
    check_text,
    is_storable,
)
from schema.types.enums import ChatRole, ResponseFormatType
from schema.types.inputs import (
    ChatMessageInput,
    ChatOptions,
    ReasoningOptions,
    ResponseFormatInput,
    RoutingInput,
    ToolCallInput,
    ToolInput,
)

MAX_MESSAGES = 500
MAX_STOP = 4
MAX_STOP_CHARS = 100
MAX_FALLBACKS = 5
MAX_MODEL_ID = 400
DEFAULT_MAX_OUTPUT = 1_000_000
# Tools: OpenAI's own limits on count and names.
MAX_TOOLS = 128
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICE_WORDS = frozenset({"auto", "none", "required"})
MAX_TOOL_DESCRIPTION_CHARS = 4096
MAX_TOOL_CALLS = 128
MAX_TOOL_CALL_ID_CHARS = 256
# JSON inputs (tool parameters, a response schema, reasoning details): nesting and size.
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_BYTES = 64 * 1024
MAX_TOOLS_BYTES = 512 * 1024
MAX_REASONING_DETAILS_DEPTH = 16
MAX_REASONING_DETAILS_BYTES = 512 * 1024
# Routing: provider names as aggregators spell them ("deepinfra/turbo", "Google AI Studio").
MAX_ROUTING_ORDER = 20
ROUTING_PROVIDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._/-]{0,63}")
MAX_PRICE_PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class CheckedMessage:
    role: ChatRole
    content: str
    attachments: list[CheckedAttachment]
    # An assistant turn's tool calls and reasoning items (passed back unchanged), or the
    # call a tool turn answers.
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    reasoning_details: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class CheckedOptions:
    """The checked options, named as on `ChatRequest` (each field is copied there)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    reasoning: ReasoningRequest | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    routing: Routing | None = None


# Every option goes into the upstream request under its own name (named once, not per call).
_OPTION_NAMES = tuple(f.name for f in fields(CheckedOptions))


@dataclass(frozen=True)
class Conversation:
    """A checked conversation, ready to be sent to any model that can read it."""

    messages: list[CheckedMessage]
    options: CheckedOptions
    session_id: str | None

    @property
    def last_user_message(self) -> CheckedMessage | None:
        for message in reversed(self.messages):
            if message.role is ChatRole.USER:
                return message
        return None

    def request_for(self, model: ModelInfo) -> ChatRequest:
        """The upstream request for `model`; refuses what the model's catalog entry says
        it cannot do (an unknown capability is tried)."""
        options = self.options
        max_tokens = options.max_tokens
        if max_tokens is not None and model.context_length and max_tokens > model.context_length:
            raise BadUserInput(
                f"maxTokens is larger than {model.id}'s context of {model.context_length}",
                field="options.maxTokens",
            )
        if (
            max_tokens is not None
            and model.max_completion_tokens
            and max_tokens > model.max_completion_tokens
        ):
            raise BadUserInput(
                f"maxTokens is larger than {model.id}'s longest answer of "
                f"{model.max_completion_tokens} tokens",
                field="options.maxTokens",
            )
        _check_supported(options, model)
        copied = {name: getattr(options, name) for name in _OPTION_NAMES}
        if (
            options.reasoning is not None
            and options.reasoning.effort == "none"
            and model.supports_reasoning is False
        ):
            copied["reasoning"] = None  # "do not think" is what such a model does anyway
        return ChatRequest(
            model=model.upstream_id,
            messages=[_openai_message(m) for m in self.messages],
            **copied,
        )


def _check_supported(options: CheckedOptions, model: ModelInfo) -> None:
    if options.tools and model.supports_tools is False:
        raise BadUserInput(f"{model.id} does not support tools", field="options.tools")
    if (
        options.reasoning is not None
        and options.reasoning.effort != "none"
        and model.supports_reasoning is False
    ):
        raise BadUserInput(f"{model.id} does not support reasoning", field="options.reasoning")
    if (
        options.response_format is not None
        and options.response_format.kind != "text"
        and model.supports_structured_output is False
        # JSON mode needs less than a schema: OpenRouter lists it as `response_format`.
        and not (
            options.response_format.kind == "json_object"
            and "response_format" in model.supported_parameters
        )
    ):
        raise BadUserInput(
            f"{model.id} does not support structured output ({options.response_format.kind})",
            field="options.responseFormat",
        )


def check_conversation(
    messages: Sequence[ChatMessageInput],
    options: ChatOptions | None,
    session_id: str | None,
    settings: Settings,
) -> Conversation:
    if not messages:
        raise BadUserInput("messages must not be empty", field="input.messages")
    if len(messages) > MAX_MESSAGES:
        raise BadUserInput(f"at most {MAX_MESSAGES} messages per request", field="input.messages")
    checked = [
        _check_message(message, f"input.messages[{i}]", settings)
        for i, message in enumerate(messages)
    ]
    if all(not m.content.strip() and not m.attachments and not m.tool_calls for m in checked):
        raise BadUserInput("every message is empty", field="input.messages")
    _check_tool_turns(checked)
    return Conversation(
        messages=checked,
        options=_check_options(options),
        session_id=check_session_id(session_id, "input.sessionId") if session_id else None,
    )


def _check_message(message: ChatMessageInput, at: str, settings: Settings) -> CheckedMessage:
    role = message.role
    if message.tool_calls is not None and role is not ChatRole.ASSISTANT:
        raise BadUserInput("toolCalls belong on ASSISTANT turns", field=f"{at}.toolCalls")
    if message.reasoning_details is not None and role is not ChatRole.ASSISTANT:
        raise BadUserInput(
            "reasoningDetails belong on ASSISTANT turns", field=f"{at}.reasoningDetails"
        )
    if message.tool_call_id is not None and role is not ChatRole.TOOL:
        raise BadUserInput("toolCallId belongs on TOOL turns", field=f"{at}.toolCallId")
    tool_call_id = None
    if role is ChatRole.TOOL:
        if message.tool_call_id is None:
            raise BadUserInput(
                "a TOOL turn needs the toolCallId it answers", field=f"{at}.toolCallId"
            )
        tool_call_id = _check_call_id(message.tool_call_id, f"{at}.toolCallId")
    return CheckedMessage(
        role=role,
        content=check_text(message.content, f"{at}.content", settings.max_content_chars),
        attachments=check_attachments(message.attachments, settings, f"{at}.attachments"),
        tool_calls=_check_tool_calls(message.tool_calls, f"{at}.toolCalls", settings),
        tool_call_id=tool_call_id,
        reasoning_details=_check_reasoning_details(
            message.reasoning_details, f"{at}.reasoningDetails"
        ),
    )


def _check_call_id(value: str, field: str) -> str:
    return check_text(value, field, MAX_TOOL_CALL_ID_CHARS, min_len=1)


def _check_tool_name(value: str, field: str) -> str:
    if TOOL_NAME.fullmatch(value) is None:
        raise BadUserInput(f"`{field}` must be 1 to 64 letters, digits, '_' or '-'", field=field)
    return value


def _check_tool_calls(
    calls: Sequence[ToolCallInput] | None, field: str, settings: Settings
) -> tuple[ToolCall, ...]:
    if not calls:
        return ()
    if len(calls) > MAX_TOOL_CALLS:
        raise BadUserInput(f"at most {MAX_TOOL_CALLS} tool calls per turn", field=field)
    checked = tuple(
        ToolCall(
            id=_check_call_id(call.id, f"{field}[{i}].id"),
            name=_check_tool_name(call.name, f"{field}[{i}].name"),
            # Passed back as the model wrote it: not parsed, only bounded.
            arguments=check_text(
                call.arguments, f"{field}[{i}].arguments", settings.max_content_chars
            ),
        )
        for i, call in enumerate(calls)
    )
    if len({call.id for call in checked}) != len(checked):
        raise BadUserInput("each tool call id may appear once per turn", field=field)
    return checked


def _check_tool_turns(messages: Sequence[CheckedMessage]) -> None:
    """Tool turns fit the calls, as every upstream requires: an ASSISTANT turn's tool
    calls are each answered by one TOOL turn right after it (before any other turn),
    and a TOOL turn answers a call of that ASSISTANT turn."""
    pending: dict[str, int] = {}  # unanswered call id -> the turn that made it
    called: set[str] = set()
    for i, message in enumerate(messages):
        if message.tool_call_id is not None:
            if message.tool_call_id not in pending:
                answered = message.tool_call_id in called
                raise BadUserInput(
                    "toolCallId answers a tool call that already has its TOOL turn"
                    if answered
                    else "toolCallId names no tool call of the ASSISTANT turn before it",
                    field=f"input.messages[{i}].toolCallId",
                )
            del pending[message.tool_call_id]
            continue
        if pending:
            raise _unanswered(pending, f"before input.messages[{i}]")
        pending = {call.id: i for call in message.tool_calls}
        called.update(pending)
    if pending:
        raise _unanswered(pending, "at the end of the conversation")


def _unanswered(pending: Mapping[str, int], where: str) -> BadUserInput:
    turn = next(iter(pending.values()))
    return BadUserInput(
        f"each tool call needs its TOOL turn (toolCallId) {where}: "
        f"{', '.join(sorted(pending))} unanswered",
        field=f"input.messages[{turn}].toolCalls",
    )


def _check_reasoning_details(value: object, field: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise BadUserInput(f"`{field}` must be a list of objects", field=field)
    check_json(
        value, field, max_depth=MAX_REASONING_DETAILS_DEPTH, max_bytes=MAX_REASONING_DETAILS_BYTES
    )
    return tuple(value)


def check_json(value: object, field: str, *, max_depth: int, max_bytes: int) -> int:
    """Refuse a JSON input value nesting deeper than `max_depth`, larger than `max_bytes`
    (as UTF-8 JSON) or holding what JSON cannot (non-finite numbers, unstorable text);
    its size in bytes. Walked without recursion, so no input can exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise BadUserInput(f"`{field}` nests deeper than {max_depth} levels", field=field)
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str) or not is_storable(key):
                        raise BadUserInput(f"`{field}` has an invalid key", field=field)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not is_storable(item):
                raise BadUserInput(
                    f"`{field}` contains a NUL byte or an invalid character", field=field
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise BadUserInput(f"`{field}` holds a number JSON cannot", field=field)
        elif item is not None and not isinstance(item, bool | int):
            raise BadUserInput(f"`{field}` is not JSON", field=field)
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > max_bytes:
        raise BadUserInput(f"`{field}` is larger than {max_bytes} bytes", field=field)
    return size


def _check_json_object(value: object, field: str, *, max_bytes: int) -> tuple[dict[str, Any], int]:
    if not isinstance(value, dict):
        raise BadUserInput(f"`{field}` must be a JSON object", field=field)
    return value, check_json(value, field, max_depth=MAX_SCHEMA_DEPTH, max_bytes=max_bytes)


def resolve_model(view: CatalogView, model_id: str, field: str) -> ModelInfo:
    model_id = check_text(model_id, field, MAX_MODEL_ID, min_len=1, strip=True)
    model = view.index.get(model_id)
    if model is None:
        raise _not_in_catalog(view, model_id, field)
    return model


def _not_in_catalog(view: CatalogView, model_id: str, field: str) -> ModelNotFound:
    """A missing model may only be missing because its provider's list could not be
    fetched: then the error names that provider and its status."""
    unlisted = [p for p in view.providers if p.fetched_at is None]
    prefix = model_id.partition(":")[0]
    if any(p.provider == prefix for p in view.providers):
        unlisted = [p for p in unlisted if p.provider == prefix]
    message = f"no model `{model_id}` in the catalog"
    if not unlisted:
        return ModelNotFound(message, details={"field": field})
    names = ", ".join(p.provider for p in unlisted)
    return ModelNotFound(
        f"{message}: the model list of {names} could not be fetched, so it may be missing "
        "only for now",
        details={
            "field": field,
            "providers": [
                {"provider": p.provider, "status": p.status, "error": p.error} for p in unlisted
            ],
        },
    )


def resolve_models(
    view: CatalogView, model: str, fallbacks: Sequence[str] | None
) -> list[ModelInfo]:
    """The model and its fallbacks, in order, without repeats."""
    if fallbacks and len(fallbacks) > MAX_FALLBACKS:
        raise BadUserInput(f"at most {MAX_FALLBACKS} fallbacks", field="input.fallbacks")
    chosen = [resolve_model(view, model, "input.model")]
    for i, fallback in enumerate(fallbacks or ()):
        candidate = resolve_model(view, fallback, f"input.fallbacks[{i}]")
        if candidate not in chosen:
            chosen.append(candidate)
    return chosen


def check_readable(conversation: Conversation, model: ModelInfo) -> None:
    """Refuse attachments the model cannot take as input."""
    for i, message in enumerate(conversation.messages):
        for j, attachment in enumerate(message.attachments):
            modality = _modality(attachment)
            if modality not in model.input_modalities:
                raise BadUserInput(
                    f"{model.id} does not accept {modality} input",
                    field=f"input.messages[{i}].attachments[{j}]",
                )


def _check_options(options: ChatOptions | None) -> CheckedOptions:
    if options is None:
        return CheckedOptions()
    _in_range(options.temperature, 0.0, 2.0, "options.temperature")
    _in_range(options.top_p, 0.0, 1.0, "options.topP")
    if options.max_tokens is not None and not 1 <= options.max_tokens <= DEFAULT_MAX_OUTPUT:
        raise BadUserInput("maxTokens must be at least 1", field="options.maxTokens")
    stop: list[str] | None = None
    if options.stop is not None:
        if len(options.stop) > MAX_STOP:
            raise BadUserInput(f"at most {MAX_STOP} stop strings", field="options.stop")
        stop = [
            check_text(s, f"options.stop[{i}]", MAX_STOP_CHARS, min_len=1)
            for i, s in enumerate(options.stop)
        ]
    tools = _check_tools(options.tools)
    return CheckedOptions(
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        top_p=options.top_p,
        stop=stop,
        seed=options.seed,
        reasoning=_check_reasoning(options.reasoning, options.max_tokens),
        tools=tools,
        tool_choice=_check_tool_choice(options.tool_choice, tools),
        parallel_tool_calls=_needs_tools(
            options.parallel_tool_calls, tools, "options.parallelToolCalls"
        ),
        response_format=_check_response_format(options.response_format),
        routing=_check_routing(options.routing),
    )


def _check_reasoning(
    reasoning: ReasoningOptions | None, max_tokens: int | None
) -> ReasoningRequest | None:
    if reasoning is None:
        return None
    if reasoning.effort is not None and reasoning.max_tokens is not None:
        raise BadUserInput(
            "give reasoning effort or maxTokens, not both", field="options.reasoning"
        )
    budget = reasoning.max_tokens
    if budget is not None:
        if not 1 <= budget <= DEFAULT_MAX_OUTPUT:
            raise BadUserInput(
                f"reasoning maxTokens must be between 1 and {DEFAULT_MAX_OUTPUT}",
                field="options.reasoning.maxTokens",
            )
        if max_tokens is not None and budget >= max_tokens:
            # The thinking budget is part of the answer's tokens: the answer needs some too.
            raise BadUserInput(
                "reasoning maxTokens must be less than options.maxTokens",
                field="options.reasoning.maxTokens",
            )
    return ReasoningRequest(
        effort=None if reasoning.effort is None else reasoning.effort.value,
        max_tokens=budget,
        exclude=bool(reasoning.exclude),
    )


def _check_tools(tools: Sequence[ToolInput] | None) -> tuple[ToolSpec, ...]:
    if not tools:
        return ()
    if len(tools) > MAX_TOOLS:
        raise BadUserInput(f"at most {MAX_TOOLS} tools", field="options.tools")
    checked: list[ToolSpec] = []
    total = 0
    for i, tool in enumerate(tools):
        at = f"options.tools[{i}]"
        parameters = None
        if tool.parameters is not None:
            parameters, size = _check_json_object(
                tool.parameters, f"{at}.parameters", max_bytes=MAX_SCHEMA_BYTES
            )
            total += size
        checked.append(
            ToolSpec(
                name=_check_tool_name(tool.name, f"{at}.name"),
                description=check_optional_text(
                    tool.description, f"{at}.description", MAX_TOOL_DESCRIPTION_CHARS
                ),
                parameters=parameters,
            )
        )
    if total > MAX_TOOLS_BYTES:
        raise BadUserInput(
            f"the tools' parameters are larger than {MAX_TOOLS_BYTES} bytes in all",
            field="options.tools",
        )
    if len({tool.name for tool in checked}) != len(checked):
        raise BadUserInput("each tool name may be used once", field="options.tools")
    return tuple(checked)


def _needs_tools(value: bool | None, tools: Sequence[ToolSpec], field: str) -> bool | None:
    _require_tools(value is not None, tools, field)
    return value


def _require_tools(given: bool, tools: Sequence[ToolSpec], field: str) -> None:
    if given and not tools:
        raise BadUserInput(f"{field.rsplit('.', maxsplit=1)[-1]} needs options.tools", field=field)


def _check_tool_choice(choice: str | None, tools: Sequence[ToolSpec]) -> str | None:
    field = "options.toolChoice"
    if choice is None:
        return None
    choice = check_text(choice, field, 64, strip=True)
    _require_tools(True, tools, field)
    if choice not in TOOL_CHOICE_WORDS and choice not in {tool.name for tool in tools}:
        raise BadUserInput(
            "toolChoice must be auto, none, required or the name of one of the tools",
            field=field,
        )
    return choice


def _check_response_format(value: ResponseFormatInput | None) -> ResponseFormat | None:
    if value is None:
        return None
    field = "options.responseFormat"
    if value.type is not ResponseFormatType.JSON_SCHEMA:
        for given, name in (
            (value.name, "name"),
            (value.schema, "schema"),
            (value.strict, "strict"),
        ):
            if given is not None:
                raise BadUserInput(
                    f"{name} goes with type JSON_SCHEMA only", field=f"{field}.{name}"
                )
        return ResponseFormat(kind=value.type.value)
    if value.schema is None:
        raise BadUserInput("JSON_SCHEMA needs a schema", field=f"{field}.schema")
    schema, _ = _check_json_object(value.schema, f"{field}.schema", max_bytes=MAX_SCHEMA_BYTES)
    name = "response" if value.name is None else _check_tool_name(value.name, f"{field}.name")
    return ResponseFormat(kind=value.type.value, name=name, schema=schema, strict=value.strict)


def _check_routing(routing: RoutingInput | None) -> Routing | None:
    if routing is None:
        return None
    order: tuple[str, ...] = ()
    if routing.order is not None:
        if len(routing.order) > MAX_ROUTING_ORDER:
            raise BadUserInput(
                f"at most {MAX_ROUTING_ORDER} providers", field="options.routing.order"
            )
        for i, name in enumerate(routing.order):
            if ROUTING_PROVIDER.fullmatch(name) is None:
                raise BadUserInput(
                    "a provider name is 1 to 64 letters, digits, spaces, '.', '_', '/' or '-'",
                    field=f"options.routing.order[{i}]",
                )
        order = tuple(routing.order)
        if len(set(order)) != len(order):
            raise BadUserInput("each provider may be named once", field="options.routing.order")
    prompt = completion = None
    if routing.max_price is not None:
        prompt = _price(routing.max_price.prompt, "options.routing.maxPrice.prompt")
        completion = _price(routing.max_price.completion, "options.routing.maxPrice.completion")
    return Routing(
        order=order,
        allow_fallbacks=routing.allow_fallbacks,
        sort=None if routing.sort is None else routing.sort.value,
        max_price_prompt=prompt,
        max_price_completion=completion,
    )


def _price(value: float | None, field: str) -> Decimal | None:
    """USD per million tokens, exact as written (0.1 stays 0.1)."""
    if value is None:
        return None
    amount = Decimal(str(value)) if math.isfinite(value) else None
    if amount is None or not 0 <= amount <= MAX_PRICE_PER_MILLION:
        raise BadUserInput(
            f"`{field}` must be between 0 and {MAX_PRICE_PER_MILLION} USD per million tokens",
            field=field,
        )
    return amount


def _in_range(value: float | None, low: float, high: float, field: str) -> None:
    if value is not None and (not math.isfinite(value) or not low <= value <= high):
        raise BadUserInput(
            f"{field.rsplit('.', maxsplit=1)[-1]} must be between {low:g} and {high:g}", field=field
        )


def _modality(attachment: CheckedAttachment) -> str:
    kind = attachment.kind.lower()
    mime = (attachment.mime_type or "").lower()
    if kind == "image" or mime.startswith("image/"):
        return "image"
    if kind == "audio" or mime.startswith("audio/"):
        return "audio"
    if kind == "video" or mime.startswith("video/"):
        return "video"
    return "file"


def _openai_message(message: CheckedMessage) -> dict[str, Any]:
    role = message.role.value
    content: str | list[dict[str, Any]] | None = message.content
    if message.attachments:
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"type": "text", "text": message.content})
        for attachment in message.attachments:
            parts.append(_content_part(attachment))
        content = parts
    elif message.tool_calls and not message.content:
        content = None  # an assistant turn that only called tools
    openai: dict[str, Any] = {"role": role, "content": content}
    if message.tool_calls:
        openai["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.reasoning_details:
        openai["reasoning_details"] = list(message.reasoning_details)
    if message.tool_call_id is not None:
        openai["tool_call_id"] = message.tool_call_id
    return openai


def _content_part(attachment: CheckedAttachment) -> dict[str, Any]:
    modality = _modality(attachment)
    if modality == "image":
        return {"type": "image_url", "image_url": {"url": attachment.url}}
    # OpenRouter's file part: a URL or a data: URL, with a file name.
    return {
        "type": "file",
        "file": {"filename": attachment.name or "attachment", "file_data": attachment.url},
    }
