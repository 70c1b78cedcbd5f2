"""The request body of a chat completion, in the dialect of the upstream that gets it.

OpenRouter, the Hugging Face router and self-hosted OpenAI-compatible servers all take
OpenAI's chat completions body; they differ in how reasoning and routing are asked for
and in how strict they are about fields they do not know:

- OpenRouter takes `reasoning: {effort | max_tokens, exclude}`, routing as a `provider`
  object, and `provider.require_parameters` so that a JSON schema (or JSON object) is only
  sent to providers that honour it. Messages go through unchanged, `reasoning_details`
  included (they must come back unchanged in a tool loop).
- The Hugging Face router and generic servers take OpenAI's `reasoning_effort` only: a
  reasoning request given as `max_tokens` alone, and `exclude`, cannot be expressed and
  are left out. They reject unknown message fields, so `reasoning_details` are dropped.
  Hugging Face takes routing as a suffix of the model id (`:cheapest`, `:fastest`,
  `:<provider>`); a generic server has no routing at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any

from providers.chat import ChatRequest, ReasoningRequest, ResponseFormat, Routing, ToolSpec


class Dialect(StrEnum):
    """Which upstream's flavour of the chat completions body a client speaks."""

    OPENROUTER = "openrouter"
    HUGGINGFACE = "huggingface"
    OPENAI = "openai"


# `tool_choice` values that are modes rather than the name of a tool.
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
# Hugging Face's routing policies, as model-id suffixes.
HF_CHEAPEST = "cheapest"
HF_FASTEST = "fastest"
# What a Hugging Face provider name looks like (`fireworks-ai`, `hf-inference`).
_HF_PROVIDER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def chat_payload(request: ChatRequest, dialect: Dialect) -> dict[str, Any]:
    """The JSON body of `POST /chat/completions` for `request` in `dialect`."""
    model = request.model
    if dialect is Dialect.HUGGINGFACE and request.routing is not None:
        model = _huggingface_model(model, request.routing)
    payload: dict[str, Any] = {
        "model": model,
        "messages": request.messages
        if dialect is Dialect.OPENROUTER
        else _without_reasoning_details(request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    optional = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": request.stop,
        "seed": request.seed,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})

    if request.reasoning is not None:
        payload.update(_reasoning(request.reasoning, dialect))
    if request.tools:
        payload["tools"] = [_tool(tool) for tool in request.tools]
    if request.tool_choice is not None:
        payload["tool_choice"] = _tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    response_format = _response_format(request.response_format)
    if response_format is not None:
        payload["response_format"] = response_format

    if dialect is Dialect.OPENROUTER:
        provider = _openrouter_provider(request.routing)
        if response_format is not None:
            # Only providers that honour the format may serve the request.
            provider["require_parameters"] = True
        if provider:
            payload["provider"] = provider
    return payload


def _reasoning(reasoning: ReasoningRequest, dialect: Dialect) -> dict[str, Any]:
    if dialect is not Dialect.OPENROUTER:
        # OpenAI's `reasoning_effort` has no token budget and no way to hide reasoning.
        return {} if reasoning.effort is None else {"reasoning_effort": reasoning.effort}
    body: dict[str, Any] = {}
    # OpenRouter takes one of effort and max_tokens; effort wins if both came.
    if reasoning.effort is not None:
        body["effort"] = reasoning.effort
    elif reasoning.max_tokens is not None:
        body["max_tokens"] = reasoning.max_tokens
    if reasoning.exclude:
        body["exclude"] = True
    if not body:
        # Reasoning asked for with no detail: the model's default effort.
        body["enabled"] = True
    return {"reasoning": body}


def _tool(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in TOOL_CHOICE_MODES:
        return choice
    return {"type": "function", "function": {"name": choice}}


def _response_format(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """OpenAI's `response_format`; None for plain text (every upstream's default) and for
    a kind no upstream knows."""
    if response_format is None or response_format.kind == "text":
        return None
    if response_format.kind == "json_object":
        return {"type": "json_object"}
    if response_format.kind != "json_schema":
        return None
    json_schema: dict[str, Any] = {
        "name": response_format.name or "response",
        "schema": dict(response_format.schema or {}),
    }
    if response_format.strict is not None:
        json_schema["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": json_schema}


def _openrouter_provider(routing: Routing | None) -> dict[str, Any]:
    if routing is None:
        return {}
    provider: dict[str, Any] = {}
    if routing.order:
        provider["order"] = list(routing.order)
    if routing.allow_fallbacks is not None:
        provider["allow_fallbacks"] = routing.allow_fallbacks
    if routing.sort is not None:
        provider["sort"] = routing.sort
    max_price = {
        key: _number(value)
        for key, value in (
            ("prompt", routing.max_price_prompt),
            ("completion", routing.max_price_completion),
        )
        if value is not None
    }
    if max_price:
        provider["max_price"] = max_price
    return provider


def _huggingface_model(model: str, routing: Routing) -> str:
    """The model id with Hugging Face's routing suffix: one provider in `order` becomes
    `:<provider>`, sort by price `:cheapest`, by throughput or latency `:fastest`. An id
    that already has a suffix keeps it; fallbacks, a longer order and max prices cannot
    be expressed and are left out."""
    if ":" in model.rsplit("/", 1)[-1]:
        return model
    if len(routing.order) == 1 and _HF_PROVIDER.fullmatch(routing.order[0]):
        return f"{model}:{routing.order[0]}"
    if routing.sort == "price":
        return f"{model}:{HF_CHEAPEST}"
    if routing.sort in ("throughput", "latency"):
        return f"{model}:{HF_FASTEST}"
    return model


def _without_reasoning_details(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not any(isinstance(m, Mapping) and "reasoning_details" in m for m in messages):
        return messages
    return [
        {key: value for key, value in message.items() if key != "reasoning_details"}
        if isinstance(message, Mapping)
        else message
        for message in messages
    ]


def _number(value: Decimal) -> int | float:
    """A JSON number for a price; integral amounts stay integers."""
    return int(value) if value == value.to_integral_value() else float(value)
