"""What each upstream is sent for reasoning, tools, structured output and routing: the
body in its own dialect (OpenRouter, Hugging Face router, generic OpenAI-compatible)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from providers.chat import ChatRequest, ReasoningRequest, ResponseFormat, Routing, ToolSpec
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.payload import Dialect, chat_payload
from tests.support.fake_upstream import FakeUpstream, answer

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
CLOCK = ToolSpec(name="get_time")
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
# A tool loop's second turn, as the resolvers hand it over.
TOOL_LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Rome?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
            }
        ],
        "reasoning_details": [
            {
                "type": "reasoning.encrypted",
                "data": "opaque==",
                "id": "r1",
                "format": "x",
                "index": 0,
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
]
BASE = {"stream": True, "stream_options": {"include_usage": True}}


def request(**options: Any) -> ChatRequest:
    options.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatRequest(model=options.pop("model", "org/model"), **options)


ALL_DIALECTS = list(Dialect)


# --- reasoning ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "openrouter", "openai"),
    [
        (ReasoningRequest(effort="high"), {"effort": "high"}, {"reasoning_effort": "high"}),
        (
            ReasoningRequest(effort="minimal", exclude=True),
            {"effort": "minimal", "exclude": True},
            {"reasoning_effort": "minimal"},
        ),
        # A token budget has no OpenAI spelling: left out there.
        (ReasoningRequest(max_tokens=2048), {"max_tokens": 2048}, {}),
        (ReasoningRequest(max_tokens=512, exclude=True), {"max_tokens": 512, "exclude": True}, {}),
        (ReasoningRequest(), {"enabled": True}, {}),
        (ReasoningRequest(effort="none"), {"effort": "none"}, {"reasoning_effort": "none"}),
    ],
)
def test_reasoning_in_each_dialect(
    reasoning: ReasoningRequest, openrouter: dict[str, Any], openai: dict[str, Any]
) -> None:
    routed = chat_payload(request(reasoning=reasoning), Dialect.OPENROUTER)
    assert routed["reasoning"] == openrouter
    assert "reasoning_effort" not in routed
    for dialect in (Dialect.HUGGINGFACE, Dialect.OPENAI):
        payload = chat_payload(request(reasoning=reasoning), dialect)
        assert "reasoning" not in payload
        assert {k: v for k, v in payload.items() if k == "reasoning_effort"} == openai


def test_no_reasoning_asked_sends_none() -> None:
    for dialect in ALL_DIALECTS:
        payload = chat_payload(request(), dialect)
        assert payload == {
            "model": "org/model",
            "messages": [{"role": "user", "content": "Hi"}],
            **BASE,
        }


# --- tools --------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
def test_tools_the_openai_way_in_every_dialect(dialect: Dialect) -> None:
    payload = chat_payload(
        request(tools=(WEATHER, CLOCK), tool_choice="required", parallel_tool_calls=False),
        dialect,
    )
    assert payload["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ]
    assert payload["tool_choice"] == "required"
    assert payload["parallel_tool_calls"] is False
    assert "provider" not in payload


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    ],
)
def test_tool_choice_mode_or_named_tool(dialect: Dialect, choice: str, sent: object) -> None:
    payload = chat_payload(request(tools=(WEATHER,), tool_choice=choice), dialect)
    assert payload["tool_choice"] == sent


def test_tool_loop_messages_reach_openrouter_unchanged() -> None:
    payload = chat_payload(request(messages=TOOL_LOOP, tools=(WEATHER,)), Dialect.OPENROUTER)
    assert payload["messages"] == TOOL_LOOP


@pytest.mark.parametrize("dialect", [Dialect.HUGGINGFACE, Dialect.OPENAI])
def test_other_dialects_get_the_tool_loop_without_reasoning_details(dialect: Dialect) -> None:
    payload = chat_payload(request(messages=TOOL_LOOP, tools=(WEATHER,)), dialect)
    assistant = dict(TOOL_LOOP[1])
    del assistant["reasoning_details"]
    assert payload["messages"] == [TOOL_LOOP[0], assistant, TOOL_LOOP[2]]
    # The caller's messages are not changed underneath it.
    assert "reasoning_details" in TOOL_LOOP[1]


# --- structured output ----------------------------------------------------------------


def test_json_schema_on_openrouter_requires_providers_that_honour_it() -> None:
    payload = chat_payload(
        request(
            response_format=ResponseFormat(
                kind="json_schema", name="reply", schema=SCHEMA, strict=True
            )
        ),
        Dialect.OPENROUTER,
    )
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }
    assert payload["provider"] == {"require_parameters": True}


def test_json_object_on_openrouter_requires_parameters_too() -> None:
    payload = chat_payload(
        request(response_format=ResponseFormat(kind="json_object")), Dialect.OPENROUTER
    )
    assert payload["response_format"] == {"type": "json_object"}
    assert payload["provider"] == {"require_parameters": True}


@pytest.mark.parametrize("dialect", [Dialect.HUGGINGFACE, Dialect.OPENAI])
def test_json_schema_elsewhere_is_plain_openai(dialect: Dialect) -> None:
    payload = chat_payload(
        request(response_format=ResponseFormat(kind="json_schema", schema=SCHEMA)), dialect
    )
    # A schema without a name gets one (OpenAI requires it); strict only when asked.
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA},
    }
    assert "provider" not in payload
    json_object = chat_payload(request(response_format=ResponseFormat(kind="json_object")), dialect)
    assert json_object["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("dialect", ALL_DIALECTS)
@pytest.mark.parametrize("kind", ["text", "yaml"])
def test_plain_text_or_unknown_format_sends_nothing(dialect: Dialect, kind: str) -> None:
    payload = chat_payload(request(response_format=ResponseFormat(kind=kind)), dialect)
    assert "response_format" not in payload
    assert "provider" not in payload


# --- routing ------------------------------------------------------------------------

ROUTING = Routing(
    order=("anthropic", "google-vertex"),
    allow_fallbacks=False,
    sort="throughput",
    max_price_prompt=Decimal("1"),
    max_price_completion=Decimal("2.5"),
)


def test_openrouter_routing_is_its_provider_object() -> None:
    payload = chat_payload(request(routing=ROUTING), Dialect.OPENROUTER)
    assert payload["provider"] == {
        "order": ["anthropic", "google-vertex"],
        "allow_fallbacks": False,
        "sort": "throughput",
        "max_price": {"prompt": 1, "completion": 2.5},
    }
    assert payload["model"] == "org/model"


def test_openrouter_routing_merges_with_require_parameters() -> None:
    payload = chat_payload(
        request(
            routing=Routing(sort="price", max_price_completion=Decimal("0.75")),
            response_format=ResponseFormat(kind="json_schema", name="r", schema=SCHEMA),
        ),
        Dialect.OPENROUTER,
    )
    assert payload["provider"] == {
        "sort": "price",
        "max_price": {"completion": 0.75},
        "require_parameters": True,
    }


@pytest.mark.parametrize(
    ("model", "routing", "sent"),
    [
        ("meta-llama/Llama-3.3-70B", Routing(sort="price"), "meta-llama/Llama-3.3-70B:cheapest"),
        (
            "meta-llama/Llama-3.3-70B",
            Routing(sort="throughput"),
            "meta-llama/Llama-3.3-70B:fastest",
        ),
        ("meta-llama/Llama-3.3-70B", Routing(sort="latency"), "meta-llama/Llama-3.3-70B:fastest"),
        ("meta-llama/Llama-3.3-70B", Routing(order=("groq",)), "meta-llama/Llama-3.3-70B:groq"),
        # One provider is more precise than a sort.
        (
            "meta-llama/Llama-3.3-70B",
            Routing(order=("together",), sort="price"),
            "meta-llama/Llama-3.3-70B:together",
        ),
        # An id that already names its route keeps it.
        ("deepseek-ai/DeepSeek-R1:novita", Routing(sort="price"), "deepseek-ai/DeepSeek-R1:novita"),
        # Nothing Hugging Face can express.
        ("org/model", Routing(order=("a", "b"), allow_fallbacks=False), "org/model"),
        ("org/model", Routing(max_price_prompt=Decimal(1)), "org/model"),
        # Not a provider name: nothing is appended to the id.
        ("org/model", Routing(order=("groq:x/../y",)), "org/model"),
    ],
)
def test_huggingface_routing_is_a_model_suffix(model: str, routing: Routing, sent: str) -> None:
    payload = chat_payload(request(model=model, routing=routing), Dialect.HUGGINGFACE)
    assert payload["model"] == sent
    assert "provider" not in payload


def test_a_generic_server_gets_no_routing() -> None:
    payload = chat_payload(request(routing=ROUTING), Dialect.OPENAI)
    assert payload == {
        "model": "org/model",
        "messages": [{"role": "user", "content": "Hi"}],
        **BASE,
    }


# --- over the wire --------------------------------------------------------------------


async def test_the_client_sends_its_dialects_body(upstream: FakeUpstream) -> None:
    upstream.default("org/model", answer("ok"))
    upstream.default("org/model:cheapest", answer("ok"))
    full = request(
        messages=TOOL_LOOP,
        reasoning=ReasoningRequest(effort="low", exclude=True),
        tools=(WEATHER,),
        tool_choice="get_weather",
        parallel_tool_calls=True,
        response_format=ResponseFormat(kind="json_object"),
        routing=Routing(sort="price"),
        temperature=0.5,
    )
    async with aiohttp.ClientSession() as session:
        for dialect in ALL_DIALECTS:
            client = OpenAICompatibleClient(
                session,
                name=dialect.value,
                base_url=upstream.url(dialect.value),
                api_key=None,
                timeouts=ChatTimeouts(),
                dialect=dialect,
            )
            assert "".join([d.content async for d in client.stream_chat(full)]) == "ok"

    bodies = {call.provider: call.body for call in upstream.chats}
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    common = {
        **BASE,
        "temperature": 0.5,
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": True,
        "response_format": {"type": "json_object"},
    }
    without_details = [TOOL_LOOP[0], dict(TOOL_LOOP[1]), TOOL_LOOP[2]]
    del without_details[1]["reasoning_details"]
    assert bodies["openrouter"] == {
        "model": "org/model",
        "messages": TOOL_LOOP,
        **common,
        "reasoning": {"effort": "low", "exclude": True},
        "provider": {"sort": "price", "require_parameters": True},
    }
    assert bodies["huggingface"] == {
        "model": "org/model:cheapest",
        "messages": without_details,
        **common,
        "reasoning_effort": "low",
    }
    assert bodies["openai"] == {
        "model": "org/model",
        "messages": without_details,
        **common,
        "reasoning_effort": "low",
    }
