"""Checking a chat input and turning it into upstream requests, before any upstream call.

Everything that can be refused is refused here: unknown models (MODEL_NOT_FOUND),
attachments a model cannot read, options out of range, oversized or invalid text
(BAD_USER_INPUT naming the field).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    check_session_id,
    check_text,
)
from schema.types.enums import ChatRole
from schema.types.inputs import ChatMessageInput, ChatOptions

MAX_MESSAGES = 500
MAX_STOP = 4
MAX_STOP_CHARS = 100
MAX_FALLBACKS = 5
MAX_MODEL_ID = 400
DEFAULT_MAX_OUTPUT = 1_000_000


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
        max_tokens = self.options.max_tokens
        if max_tokens is not None and model.context_length and max_tokens > model.context_length:
            raise BadUserInput(
                f"maxTokens is larger than {model.id}'s context of {model.context_length}",
                field="options.maxTokens",
            )
        return ChatRequest(
            model=model.upstream_id,
            messages=[_openai_message(m) for m in self.messages],
            temperature=self.options.temperature,
            top_p=self.options.top_p,
            max_tokens=max_tokens,
            stop=self.options.stop,
            seed=self.options.seed,
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
        CheckedMessage(
            role=message.role,
            content=check_text(
                message.content, f"input.messages[{i}].content", settings.max_content_chars
            ),
            attachments=check_attachments(
                message.attachments, settings, f"input.messages[{i}].attachments"
            ),
        )
        for i, message in enumerate(messages)
    ]
    if all(not m.content.strip() and not m.attachments for m in checked):
        raise BadUserInput("every message is empty", field="input.messages")
    return Conversation(
        messages=checked,
        options=_check_options(options),
        session_id=check_session_id(session_id, "input.sessionId") if session_id else None,
    )


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
    return CheckedOptions(
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        top_p=options.top_p,
        stop=stop,
        seed=options.seed,
    )


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
    if not message.attachments:
        return {"role": role, "content": message.content}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for attachment in message.attachments:
        parts.append(_content_part(attachment))
    return {"role": role, "content": parts}


def _content_part(attachment: CheckedAttachment) -> dict[str, Any]:
    modality = _modality(attachment)
    if modality == "image":
        return {"type": "image_url", "image_url": {"url": attachment.url}}
    # OpenRouter's file part: a URL or a data: URL, with a file name.
    return {
        "type": "file",
        "file": {"filename": attachment.name or "attachment", "file_data": attachment.url},
    }
