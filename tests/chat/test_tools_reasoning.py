"""Thinking models, tool calls, structured output and routing through `chat`,
`compare` and `chatStream`: what is sent upstream, what comes back, what is refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from documents.database import Database
from providers.chat import (
    ChatDelta,
    ReasoningRequest,
    ResponseFormat,
    Routing,
    TokenUsage,
    ToolCallFragment,
    ToolSpec,
)
from providers.errors import ProviderUnavailable
from providers.model import ModelInfo, Pricing
from providers.pricing import cost_of
from resolvers.chat.inputs import check_json
from resolvers.errors import BadUserInput
from tests.chat.conftest import PRICED, ChatHarness, chat_harness
from tests.support.errors import without_request_id

THINKER = ModelInfo(
    provider="openrouter",
    upstream_id="acme/thinker",
    name="Thinker",
    context_length=65536,
    pricing=Pricing(
        Decimal("1"),
        Decimal("4"),
        cache_read_per_million=Decimal("0.25"),
        reasoning_per_million=Decimal("4"),
    ),
    supports_tools=True,
    supports_reasoning=True,
    supports_structured_output=True,
    max_completion_tokens=4096,
)
# Its catalog entry says it takes none of the extras.
PLAIN = ModelInfo(
    provider="openrouter",
    upstream_id="acme/plain",
    name="Plain",
    context_length=8192,
    pricing=Pricing(Decimal("0.1"), Decimal("0.2")),
    supports_tools=False,
    supports_reasoning=False,
    supports_structured_output=False,
)

RESULT_FIELDS = """
    model finishReason generationId reasoning reasoningDetails
    message { content }
    toolCalls { id name arguments }
    usage { promptTokens completionTokens reasoningTokens cachedPromptTokens cacheWriteTokens }
    cost { totalCost known }
"""
CHAT = f"mutation ($input: ChatInput!) {{ chat(input: $input) {{ {RESULT_FIELDS} }} }}"
COMPARE = """
mutation ($input: CompareInput!) { compare(input: $input) { model error { code } } }
"""
STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted {
      model content finishReason reasoning reasoningDetails generationId
      toolCalls { id name arguments }
    }
    ... on ChatFailed { model code partialContent partialReasoning
                        partialToolCalls { id name arguments } }
  }
}
"""

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
    },
}
TIME_TOOL = {"name": "get_time", "parameters": {"type": "object", "properties": {}}}
WEATHER_ARGS = json.dumps({"city": "Zürich", "unit": "celsius", "note": 'a "quoted" } word'})
TIME_ARGS = json.dumps({"zone": "Europe/Zurich"})
# What a thinking model gives to be passed back: opaque, and must come back unchanged.
DETAILS = [
    {
        "type": "reasoning.text",
        "text": "The user wants weather.",
        "format": "anthropic-claude-v1",
        "index": 0,
        "signature": "c2lnbmF0dXJl",
    },
    {
        "type": "reasoning.encrypted",
        "data": "ZW5jcnlwdGVk/+==",
        "id": "rs_1",
        "index": 1,
        "format": "openai-responses-v1",
    },
]


@pytest_asyncio.fixture
async def harness(tmp_path: Path, database: Database) -> AsyncIterator[ChatHarness]:
    async with chat_harness(tmp_path, database, (PRICED, THINKER, PLAIN)) as running:
        yield running


def chat_input(
    model: str = THINKER.id,
    messages: list[dict[str, Any]] | None = None,
    **options: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages or [{"role": "USER", "content": "Weather in Zürich?"}],
    }
    if options:
        payload["options"] = options
    return {"input": payload}


def error_of(result: Any) -> dict[str, Any]:
    assert result.errors, result
    return without_request_id(result.errors[0].extensions, "req-chat")


def finish(reason: str = "stop", **usage: int) -> ChatDelta:
    prompt, completion = usage.pop("prompt", 10), usage.pop("completion", 20)
    return ChatDelta(
        content="",
        finish_reason=reason,
        usage=TokenUsage(prompt, completion, prompt + completion, **usage),  # type: ignore[arg-type]
    )


async def stream_events(harness: ChatHarness, variables: dict[str, Any]) -> list[dict[str, Any]]:
    results = await harness.subscribe(STREAM, variables)
    assert all(r.errors is None for r in results), [r.errors for r in results]
    return [r.data["chatStream"] for r in results]  # type: ignore[index]


def of_type(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["__typename"] == name]


# ------------------------------------------------------------------ reasoning


async def test_reasoning_whole_answer_with_details_tokens_and_generation_id(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning="Let me ", generation_id="gen-42"),
        ChatDelta(content="", reasoning="think.", reasoning_details=tuple(DETAILS)),
        "It is ",
        "sunny.",
        finish(completion=20, reasoning_tokens=12, cached_prompt_tokens=4, cache_write_tokens=2),
    )
    result = await harness.run(CHAT, chat_input(reasoning={"effort": "HIGH"}))

    assert result.errors is None, result.errors
    chat = result.data["chat"]  # type: ignore[index]
    assert chat["message"]["content"] == "It is sunny."
    assert chat["reasoning"] == "Let me think."
    assert chat["reasoningDetails"] == DETAILS
    assert chat["generationId"] == "gen-42"
    assert chat["toolCalls"] == []
    assert chat["usage"] == {
        "promptTokens": 10,
        "completionTokens": 20,
        "reasoningTokens": 12,
        "cachedPromptTokens": 4,
        "cacheWriteTokens": 2,
    }
    # Priced with the cached, cache-write and reasoning tokens, as pricing prices them.
    expected = cost_of(
        prompt_tokens=10,
        completion_tokens=20,
        pricing=THINKER.pricing,
        cached_prompt_tokens=4,
        cache_write_tokens=2,
        reasoning_tokens=12,
    )
    assert chat["cost"] == {"totalCost": float(expected.total_cost), "known": True}
    (request,) = harness.openrouter.requests
    assert request.reasoning == ReasoningRequest(effort="high")


async def test_reasoning_budget_and_exclude_reach_the_request(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("ok")
    options: dict[str, Any] = {"maxTokens": 2000, "reasoning": {"maxTokens": 1500, "exclude": True}}
    assert (await harness.run(CHAT, chat_input(**options))).errors is None
    (request,) = harness.openrouter.requests
    assert request.reasoning == ReasoningRequest(max_tokens=1500, exclude=True)
    assert request.max_tokens == 2000


async def test_reasoning_streams_as_its_own_deltas_with_their_own_index(
    harness: ChatHarness,
) -> None:
    # Kinds alternate, so however the stream gathers pieces each is its own event.
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning="First I "),
        "Sun",
        ChatDelta(content="", reasoning="check."),
        "ny.",
        ChatDelta(content="", reasoning_details=tuple(DETAILS), generation_id="gen-7"),
    )
    events = await stream_events(harness, chat_input(reasoning={"effort": "LOW"}))

    assert [e["__typename"] for e in events] == [
        "ChatReasoningDelta",
        "ChatDelta",
        "ChatReasoningDelta",
        "ChatDelta",
        "ChatCompleted",
    ]
    thinking, answer = of_type(events, "ChatReasoningDelta"), of_type(events, "ChatDelta")
    assert [(e["index"], e["content"]) for e in thinking] == [(0, "First I "), (1, "check.")]
    assert [(e["index"], e["content"]) for e in answer] == [(0, "Sun"), (1, "ny.")]
    assert {e["model"] for e in thinking + answer} == {THINKER.id}
    completed = events[-1]
    assert completed["content"] == "Sunny."
    assert completed["reasoning"] == "First I check."
    assert completed["reasoningDetails"] == DETAILS
    assert completed["generationId"] == "gen-7"


async def test_no_effort_asked_of_a_model_that_cannot_think_is_sent_as_nothing(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue("ok")
    result = await harness.run(CHAT, chat_input(PLAIN.id, reasoning={"effort": "NONE"}))
    assert result.errors is None
    (request,) = harness.openrouter.requests
    assert request.reasoning is None


# ------------------------------------------------------------------ tool calls


def interleaved_tool_call_deltas() -> list[ChatDelta]:
    """get_weather (index 0) and get_time (index 1), announced together, then their
    arguments one character of each per delta, the second call's piece first."""
    deltas = [
        ChatDelta(
            content="",
            tool_calls=(
                ToolCallFragment(index=0, id="call_w", name="get_weather"),
                ToolCallFragment(index=1, id="call_t", name="get_time"),
            ),
        )
    ]
    for i in range(max(len(WEATHER_ARGS), len(TIME_ARGS))):
        fragments = [
            ToolCallFragment(index=1, arguments=TIME_ARGS[i : i + 1]),
            ToolCallFragment(index=0, arguments=WEATHER_ARGS[i : i + 1]),
        ]
        deltas.append(ChatDelta(content="", tool_calls=tuple(f for f in fragments if f.arguments)))
    return deltas


EXPECTED_CALLS = [
    {"id": "call_w", "name": "get_weather", "arguments": WEATHER_ARGS},
    {"id": "call_t", "name": "get_time", "arguments": TIME_ARGS},
]


async def test_two_parallel_tool_calls_stream_as_tool_call_deltas_and_end_exact(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue(*interleaved_tool_call_deltas(), finish("tool_calls"))
    tools = [WEATHER_TOOL, TIME_TOOL]
    events = await stream_events(
        harness, chat_input(tools=tools, toolChoice="auto", parallelToolCalls=True)
    )

    pieces = of_type(events, "ChatToolCallDelta")
    assert of_type(events, "ChatDelta") == []
    assert [e["index"] for e in pieces] == list(range(len(pieces)))
    for position, expected in enumerate(EXPECTED_CALLS):
        mine = [e for e in pieces if e["toolCallIndex"] == position]
        assert (mine[0]["id"], mine[0]["name"]) == (expected["id"], expected["name"])
        assert all(e["id"] is None and e["name"] is None for e in mine[1:])
        assert "".join(e["argumentsDelta"] for e in mine) == expected["arguments"]
    completed = events[-1]
    assert completed["__typename"] == "ChatCompleted"
    assert completed["finishReason"] == "tool_calls"
    assert completed["toolCalls"] == EXPECTED_CALLS
    assert completed["content"] == ""

    (request,) = harness.openrouter.requests
    assert request.tools == (
        ToolSpec(
            name="get_weather",
            description="The weather in a city now.",
            parameters=WEATHER_TOOL["parameters"],  # type: ignore[arg-type]
        ),
        ToolSpec(name="get_time", parameters={"type": "object", "properties": {}}),
    )
    assert (request.tool_choice, request.parallel_tool_calls) == ("auto", True)


async def test_whole_answer_carries_the_assembled_tool_calls(harness: ChatHarness) -> None:
    harness.openrouter.enqueue(*interleaved_tool_call_deltas(), finish("tool_calls"))
    result = await harness.run(CHAT, chat_input(tools=[WEATHER_TOOL, TIME_TOOL]))
    assert result.errors is None
    chat = result.data["chat"]  # type: ignore[index]
    assert chat["toolCalls"] == EXPECTED_CALLS
    assert chat["finishReason"] == "tool_calls"


async def test_two_turn_tool_loop_passes_calls_results_and_reasoning_details_back(
    harness: ChatHarness,
) -> None:
    question = {"role": "USER", "content": "Weather in Zürich?"}
    # Turn 1: the model thinks, then calls the tool.
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning="Need the weather.", reasoning_details=tuple(DETAILS)),
        ChatDelta(
            content="",
            tool_calls=(ToolCallFragment(index=0, id="call_w", name="get_weather"),),
        ),
        ChatDelta(content="", tool_calls=(ToolCallFragment(index=0, arguments='{"city":'),)),
        ChatDelta(content="", tool_calls=(ToolCallFragment(index=0, arguments='"Zürich"}'),)),
        finish("tool_calls"),
    )
    options: dict[str, Any] = {"tools": [WEATHER_TOOL], "reasoning": {"effort": "MEDIUM"}}
    first = await harness.run(CHAT, chat_input(messages=[question], **options))
    assert first.errors is None, first.errors
    turn = first.data["chat"]  # type: ignore[index]
    assert turn["toolCalls"] == [
        {"id": "call_w", "name": "get_weather", "arguments": '{"city":"Zürich"}'}
    ]

    # Turn 2: the call and its result go back, with the reasoning details as they came.
    harness.openrouter.enqueue("It is 21 °C in Zürich.")
    messages = [
        question,
        {
            "role": "ASSISTANT",
            "content": turn["message"]["content"],
            "toolCalls": turn["toolCalls"],
            "reasoningDetails": turn["reasoningDetails"],
        },
        {"role": "TOOL", "toolCallId": "call_w", "content": '{"temperature": 21}'},
    ]
    second = await harness.run(CHAT, chat_input(messages=messages, **options))
    assert second.errors is None, second.errors
    assert second.data["chat"]["message"]["content"] == "It is 21 °C in Zürich."  # type: ignore[index]

    _, request = harness.openrouter.requests
    assert request.messages == [
        {"role": "user", "content": "Weather in Zürich?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Zürich"}'},
                }
            ],
            "reasoning_details": DETAILS,
        },
        {"role": "tool", "content": '{"temperature": 21}', "tool_call_id": "call_w"},
    ]


# ------------------------------------------------------------------ failures and retries


async def test_a_mid_stream_failure_keeps_partial_reasoning_and_tool_calls(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning="Hmm."),
        ChatDelta(
            content="",
            tool_calls=(
                ToolCallFragment(index=0, id="call_w", name="get_weather", arguments='{"ci'),
            ),
        ),
        ProviderUnavailable("connection reset", provider="openrouter"),
    )
    events = await stream_events(harness, chat_input(tools=[WEATHER_TOOL]))

    failed = events[-1]
    assert failed["__typename"] == "ChatFailed"
    assert failed["model"] == THINKER.id
    assert failed["partialReasoning"] == "Hmm."
    assert failed["partialToolCalls"] == [
        {"id": "call_w", "name": "get_weather", "arguments": '{"ci'}
    ]
    assert failed["partialContent"] == ""
    # Output had been shown: no retry.
    assert len(harness.openrouter.requests) == 1


async def test_a_retry_before_any_output_starts_clean(harness: ChatHarness) -> None:
    stale = ({"type": "reasoning.encrypted", "data": "stale"},)
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning_details=stale, generation_id="gen-failed"),
        ProviderUnavailable("HTTP 503", provider="openrouter", status=503),
    )
    harness.openrouter.enqueue(
        ChatDelta(content="", reasoning="Fresh.", reasoning_details=tuple(DETAILS)),
        ChatDelta(content="Done.", generation_id="gen-ok"),
    )
    result = await harness.run(CHAT, chat_input(reasoning={"effort": "LOW"}))

    assert result.errors is None, result.errors
    chat = result.data["chat"]  # type: ignore[index]
    assert (chat["reasoning"], chat["reasoningDetails"]) == ("Fresh.", DETAILS)
    assert chat["generationId"] == "gen-ok"
    assert len(harness.openrouter.requests) == 2


# ------------------------------------------------------------------ what a model cannot do

UNSUPPORTED = [
    pytest.param({"tools": [WEATHER_TOOL]}, "options.tools", id="tools"),
    pytest.param({"reasoning": {"effort": "HIGH"}}, "options.reasoning", id="reasoning"),
    pytest.param({"reasoning": {"maxTokens": 100}}, "options.reasoning", id="reasoning-budget"),
    pytest.param(
        {"responseFormat": {"type": "JSON_SCHEMA", "name": "w", "schema": {"type": "object"}}},
        "options.responseFormat",
        id="json-schema",
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_OBJECT"}}, "options.responseFormat", id="json-object"
    ),
]


@pytest.mark.parametrize(("options", "field"), UNSUPPORTED)
async def test_asking_a_model_for_what_its_catalog_entry_says_it_lacks_is_refused(
    harness: ChatHarness, options: dict[str, Any], field: str
) -> None:
    result = await harness.run(CHAT, chat_input(PLAIN.id, **options))
    error = error_of(result)
    assert error == {"code": "BAD_USER_INPUT", "details": {"field": field}}
    assert PLAIN.id in result.errors[0].message  # type: ignore[index]
    assert harness.openrouter.requests == []


@pytest.mark.parametrize(("options", "field"), UNSUPPORTED)
async def test_a_fallback_that_lacks_an_option_is_refused_before_any_call(
    harness: ChatHarness, options: dict[str, Any], field: str
) -> None:
    variables = chat_input(THINKER.id, **options)
    variables["input"]["fallbacks"] = [PLAIN.id]
    assert error_of(await harness.run(CHAT, variables)) == {
        "code": "BAD_USER_INPUT",
        "details": {"field": field},
    }
    assert harness.openrouter.requests == []


async def test_a_compared_model_that_lacks_an_option_is_refused_before_any_call(
    harness: ChatHarness,
) -> None:
    variables = {
        "input": {
            "models": [THINKER.id, PLAIN.id],
            "messages": [{"role": "USER", "content": "Hi"}],
            "options": {"responseFormat": {"type": "JSON_OBJECT"}},
        }
    }
    assert error_of(await harness.run(COMPARE, variables)) == {
        "code": "BAD_USER_INPUT",
        "details": {"field": "options.responseFormat"},
    }
    assert harness.openrouter.requests == []


async def test_a_model_whose_support_is_unknown_is_tried_with_the_options(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue('{"city": "Zürich"}')
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    options: dict[str, Any] = {
        "responseFormat": {
            "type": "JSON_SCHEMA",
            "name": "place",
            "schema": schema,
            "strict": True,
        },
        "tools": [WEATHER_TOOL],
        "toolChoice": "none",
        "reasoning": {"effort": "XHIGH"},
    }
    result = await harness.run(CHAT, chat_input(PRICED.id, **options))
    assert result.errors is None, result.errors
    (request,) = harness.openrouter.requests
    assert request.response_format == ResponseFormat(
        kind="json_schema", name="place", schema=schema, strict=True
    )
    assert request.reasoning == ReasoningRequest(effort="xhigh")
    assert (request.tools[0].name, request.tool_choice) == ("get_weather", "none")


async def test_a_plain_json_object_and_routing_reach_the_request(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("{}")
    options: dict[str, Any] = {
        "responseFormat": {"type": "JSON_OBJECT"},
        "routing": {
            "order": ["deepinfra/turbo", "Google AI Studio"],
            "allowFallbacks": False,
            "sort": "PRICE",
            "maxPrice": {"prompt": 0.5, "completion": 1.5},
        },
    }
    assert (await harness.run(CHAT, chat_input(**options))).errors is None
    (request,) = harness.openrouter.requests
    assert request.response_format == ResponseFormat(kind="json_object")
    assert request.routing == Routing(
        order=("deepinfra/turbo", "Google AI Studio"),
        allow_fallbacks=False,
        sort="price",
        max_price_prompt=Decimal("0.5"),
        max_price_completion=Decimal("1.5"),
    )


# ------------------------------------------------------------------ refused inputs


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"x": value}}
    return value


CALL = {"id": "call_1", "name": "get_weather", "arguments": "{}"}
USER = {"role": "USER", "content": "Hi"}

BAD_OPTIONS = [
    pytest.param(
        {"reasoning": {"effort": "LOW", "maxTokens": 10}},
        "options.reasoning",
        id="effort-and-budget",
    ),
    pytest.param({"reasoning": {"maxTokens": 0}}, "options.reasoning.maxTokens", id="budget-zero"),
    pytest.param(
        {"maxTokens": 100, "reasoning": {"maxTokens": 100}},
        "options.reasoning.maxTokens",
        id="budget-not-below-max-tokens",
    ),
    pytest.param({"maxTokens": 5000}, "options.maxTokens", id="beyond-max-completion-tokens"),
    pytest.param(
        {"tools": [{"name": "get weather"}]}, "options.tools[0].name", id="tool-name-space"
    ),
    pytest.param({"tools": [{"name": "x" * 65}]}, "options.tools[0].name", id="tool-name-long"),
    pytest.param({"tools": [{"name": ""}]}, "options.tools[0].name", id="tool-name-empty"),
    pytest.param({"tools": [TIME_TOOL, TIME_TOOL]}, "options.tools", id="tool-name-twice"),
    pytest.param(
        {"tools": [{"name": f"t{i}"} for i in range(129)]}, "options.tools", id="too-many-tools"
    ),
    pytest.param(
        {"tools": [{"name": "f", "parameters": ["type", "object"]}]},
        "options.tools[0].parameters",
        id="parameters-not-an-object",
    ),
    pytest.param(
        {"tools": [{"name": "f", "parameters": nested(40)}]},
        "options.tools[0].parameters",
        id="parameters-too-deep",
    ),
    pytest.param(
        {"tools": [{"name": "f", "parameters": {"description": "x" * 70_000}}]},
        "options.tools[0].parameters",
        id="parameters-too-large",
    ),
    pytest.param(
        {"tools": [{"name": "f", "description": "d" * 5000}]},
        "options.tools[0].description",
        id="description-too-long",
    ),
    pytest.param(
        {"tools": [TIME_TOOL], "toolChoice": "always"}, "options.toolChoice", id="choice-unknown"
    ),
    pytest.param(
        {"tools": [TIME_TOOL], "toolChoice": "get_weather"},
        "options.toolChoice",
        id="choice-undeclared-tool",
    ),
    pytest.param({"toolChoice": "required"}, "options.toolChoice", id="choice-without-tools"),
    pytest.param(
        {"parallelToolCalls": True}, "options.parallelToolCalls", id="parallel-without-tools"
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_SCHEMA", "name": "w"}},
        "options.responseFormat.schema",
        id="schema-missing",
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_SCHEMA", "schema": "object"}},
        "options.responseFormat.schema",
        id="schema-not-an-object",
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_SCHEMA", "schema": nested(40)}},
        "options.responseFormat.schema",
        id="schema-too-deep",
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_SCHEMA", "name": "my schema", "schema": {}}},
        "options.responseFormat.name",
        id="schema-name",
    ),
    pytest.param(
        {"responseFormat": {"type": "JSON_OBJECT", "schema": {}}},
        "options.responseFormat.schema",
        id="schema-without-json-schema",
    ),
    pytest.param(
        {"routing": {"order": ["deepinfra", "deepinfra"]}},
        "options.routing.order",
        id="order-twice",
    ),
    pytest.param(
        {"routing": {"order": ["bad\nname"]}}, "options.routing.order[0]", id="order-bad-name"
    ),
    pytest.param(
        {"routing": {"order": [f"p{i}" for i in range(21)]}},
        "options.routing.order",
        id="order-too-long",
    ),
    pytest.param(
        {"routing": {"maxPrice": {"prompt": -1}}},
        "options.routing.maxPrice.prompt",
        id="max-price-negative",
    ),
    pytest.param(
        {"routing": {"maxPrice": {"completion": 1e9}}},
        "options.routing.maxPrice.completion",
        id="max-price-absurd",
    ),
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
async def test_bad_options_are_refused_naming_the_field(
    harness: ChatHarness, options: dict[str, Any], field: str
) -> None:
    result = await harness.run(CHAT, chat_input(**options))
    assert error_of(result) == {"code": "BAD_USER_INPUT", "details": {"field": field}}
    assert harness.openrouter.requests == []


BAD_MESSAGES = [
    pytest.param(
        [USER, {"role": "TOOL", "content": "21"}], "input.messages[1].toolCallId", id="tool-no-id"
    ),
    pytest.param(
        [{**USER, "toolCalls": [CALL]}], "input.messages[0].toolCalls", id="calls-on-user"
    ),
    pytest.param(
        [{**USER, "toolCallId": "call_1"}], "input.messages[0].toolCallId", id="call-id-on-user"
    ),
    pytest.param(
        [{**USER, "reasoningDetails": DETAILS}],
        "input.messages[0].reasoningDetails",
        id="details-on-user",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "reasoningDetails": {"type": "x"}}],
        "input.messages[1].reasoningDetails",
        id="details-not-a-list",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "reasoningDetails": ["text"]}],
        "input.messages[1].reasoningDetails",
        id="details-not-objects",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "reasoningDetails": [nested(20)]}],
        "input.messages[1].reasoningDetails",
        id="details-too-deep",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "toolCalls": [{**CALL, "name": "a b"}]}],
        "input.messages[1].toolCalls[0].name",
        id="call-name",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "toolCalls": [{**CALL, "id": ""}]}],
        "input.messages[1].toolCalls[0].id",
        id="call-id-empty",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "toolCalls": [CALL, CALL]}],
        "input.messages[1].toolCalls",
        id="call-id-twice",
    ),
    pytest.param(
        [
            USER,
            {"role": "ASSISTANT", "content": "", "toolCalls": [CALL]},
            {"role": "TOOL", "toolCallId": "call_2", "content": "21"},
        ],
        "input.messages[2].toolCallId",
        id="answers-no-call",
    ),
    pytest.param(
        [{"role": "TOOL", "toolCallId": "call_1", "content": "21"}, USER],
        "input.messages[0].toolCallId",
        id="answers-before-the-call",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "toolCalls": [CALL]}, USER],
        "input.messages[1].toolCalls",
        id="call-left-unanswered",
    ),
    pytest.param(
        [USER, {"role": "ASSISTANT", "content": "", "toolCalls": [CALL]}],
        "input.messages[1].toolCalls",
        id="ends-with-an-unanswered-call",
    ),
    pytest.param(
        [
            USER,
            {"role": "ASSISTANT", "content": "", "toolCalls": [CALL]},
            {"role": "TOOL", "toolCallId": CALL["id"], "content": "21"},
            {"role": "TOOL", "toolCallId": CALL["id"], "content": "21 again"},
        ],
        "input.messages[3].toolCallId",
        id="answered-twice",
    ),
    pytest.param(
        [
            USER,
            {"role": "ASSISTANT", "content": "", "toolCalls": [CALL]},
            {"role": "TOOL", "toolCallId": CALL["id"], "content": "21"},
            {"role": "ASSISTANT", "content": "It is 21."},
            USER,
            {"role": "TOOL", "toolCallId": CALL["id"], "content": "late"},
        ],
        "input.messages[5].toolCallId",
        id="answers-a-call-of-an-older-turn",
    ),
]


@pytest.mark.parametrize(("messages", "field"), BAD_MESSAGES)
async def test_tool_turns_that_do_not_fit_together_are_refused(
    harness: ChatHarness, messages: list[dict[str, Any]], field: str
) -> None:
    result = await harness.run(CHAT, chat_input(messages=messages))
    assert error_of(result) == {"code": "BAD_USER_INPUT", "details": {"field": field}}
    assert harness.openrouter.requests == []


def test_a_json_input_of_any_depth_is_refused_without_exhausting_the_stack() -> None:
    deep: list[Any] = []
    for _ in range(200_000):
        deep = [deep]
    with pytest.raises(BadUserInput, match="nests deeper than 32 levels"):
        check_json(deep, "options.tools[0].parameters", max_depth=32, max_bytes=1 << 20)


@pytest.mark.parametrize(
    "value",
    [{"a": "nul\x00"}, {"lone\ud800": 1}, {"a": float("nan")}, {"a": {1, 2}}],
    ids=["nul", "surrogate-key", "nan", "not-json"],
)
def test_a_json_input_json_cannot_hold_is_refused(value: object) -> None:
    with pytest.raises(BadUserInput) as refused:
        check_json(value, "options.responseFormat.schema", max_depth=32, max_bytes=1 << 20)
    assert refused.value.details == {"field": "options.responseFormat.schema"}


async def test_streamed_reasoning_items_come_back_whole(harness: ChatHarness) -> None:
    # As OpenRouter streams them: pieces of one item share its index; the signature
    # comes with the last piece; an encrypted item of its own index stays as it came.
    def piece(**item: Any) -> ChatDelta:
        return ChatDelta(content="", reasoning_details=(item,))

    harness.openrouter.enqueue(
        piece(type="reasoning.text", text="Need ", index=0, format="anthropic-claude-v1"),
        piece(type="reasoning.text", text="weather.", index=0),
        piece(type="reasoning.text", text="", index=0, signature="c2ln"),
        piece(type="reasoning.encrypted", data="ZW5j", id="rs_1", index=1),
        "Sunny.",
    )
    result = await harness.run(CHAT, chat_input(reasoning={"effort": "LOW"}))
    assert result.errors is None
    assert result.data["chat"]["reasoningDetails"] == [  # type: ignore[index]
        {
            "type": "reasoning.text",
            "text": "Need weather.",
            "index": 0,
            "format": "anthropic-claude-v1",
            "signature": "c2ln",
        },
        {"type": "reasoning.encrypted", "data": "ZW5j", "id": "rs_1", "index": 1},
    ]


async def test_a_model_that_lists_response_format_but_not_structured_outputs_takes_json_object(
    tmp_path: Path, database: Database
) -> None:
    # OpenRouter's `response_format` alone means JSON mode; `structured_outputs` means schemas.
    json_mode = ModelInfo(
        provider="openrouter",
        upstream_id="acme/json-mode",
        name="JSON mode",
        supported_parameters=("max_tokens", "response_format"),
        supports_tools=False,
        supports_reasoning=False,
        supports_structured_output=False,
    )
    async with chat_harness(tmp_path, database, (json_mode,)) as running:
        running.openrouter.enqueue("{}")
        whole = await running.run(
            CHAT, chat_input(json_mode.id, responseFormat={"type": "JSON_OBJECT"})
        )
        assert whole.errors is None, whole.errors
        (request,) = running.openrouter.requests
        assert request.response_format == ResponseFormat(kind="json_object")

        schema = {"type": "JSON_SCHEMA", "name": "w", "schema": {"type": "object"}}
        refused = await running.run(CHAT, chat_input(json_mode.id, responseFormat=schema))
        assert error_of(refused) == {
            "code": "BAD_USER_INPUT",
            "details": {"field": "options.responseFormat"},
        }
        assert len(running.openrouter.requests) == 1
