"""Tools, reasoning, structured output and routing through `/v1/chat/completions`, driven
by the official `openai` SDK: what reaches the upstream, what the SDK gets back."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.adapters.conftest import Clients, call
from tests.adapters.test_openai_sdk import hello
from tests.streaming.conftest import (
    GPT_MINI,
    GPT_MINI_UPSTREAM,
    LLAMA_HF,
    LLAMA_HF_UPSTREAM,
    MISTRAL,
    StreamApp,
)
from tests.support.fake_upstream import FakeUpstream, Raw, Reply, Stream, fixture_json, steps

# A thinking model that takes tools and JSON schemas (as OpenRouter's listing says).
THINKER = "openrouter:acme/thinker"
THINKER_UPSTREAM = "acme/thinker"
THINKER_LISTING = {
    "id": THINKER_UPSTREAM,
    "name": "Acme: Thinker",
    "context_length": 65536,
    "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
    "pricing": {
        "prompt": "0.000001",
        "completion": "0.000004",
        "internal_reasoning": "0.000004",
        "input_cache_read": "0.00000025",
    },
    "top_provider": {"context_length": 65536, "max_completion_tokens": 4096},
    "supported_parameters": [
        "max_tokens",
        "temperature",
        "tools",
        "tool_choice",
        "reasoning",
        "include_reasoning",
        "response_format",
        "structured_outputs",
    ],
}

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "kelvin"]}},
            "required": ["city"],
        },
    },
}
TIME_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
WEATHER_ARGS = json.dumps({"city": "Zürich", "unit": "celsius", "note": 'a "quoted" } word'})
TIME_ARGS = json.dumps({"zone": "Europe/Zurich"})
DETAILS = [
    {
        "type": "reasoning.text",
        "text": "The user wants weather.",
        "format": "anthropic-claude-v1",
        "index": 0,
        "signature": "c2lnbmF0dXJl",
    },
    {"type": "reasoning.encrypted", "data": "ZW5jcnlwdGVk/+==", "id": "rs_1", "index": 1},
]
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "number"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}


@pytest.fixture
def thinker(sse: FakeUpstream) -> None:
    """OpenRouter's listing with the thinking model in it."""
    listing = fixture_json("openrouter_models.json")
    listing["data"].append(THINKER_LISTING)
    sse.set("/openrouter/models", Reply(body=listing, close=True))


def chunk(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    model: str = THINKER_UPSTREAM,
) -> bytes:
    """One upstream SSE event in OpenRouter's shape."""
    payload: dict[str, Any] = {
        "id": "gen-thinker-1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        payload["usage"] = usage
    return f"data: {json.dumps(payload)}\n\n".encode()


def usage(prompt: int = 20, completion: int = 30, reasoning: int = 12, cached: int = 8) -> bytes:
    return chunk(
        usage={
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
    )


def played(*events: bytes) -> Stream:
    return steps(*(Raw(event) for event in events))


def split_everywhere(data: bytes, size: int = 7) -> Stream:
    """The same bytes, cut into pieces of `size` wherever that falls (mid-JSON, mid-UTF-8)."""
    return steps(*(Raw(data[i : i + size]) for i in range(0, len(data), size)))


def tool_call_answer() -> bytes:
    """Reasoning, its details, then one call to get_weather in three pieces."""
    return b"".join(
        [
            chunk({"role": "assistant", "reasoning": "The user wants "}),
            chunk({"reasoning": "the weather.", "reasoning_details": DETAILS}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_w",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": WEATHER_ARGS[:9]},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": WEATHER_ARGS[9:30]}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": WEATHER_ARGS[30:]}}]}),
            chunk({}, finish="tool_calls"),
            usage(),
        ]
    )


TOOL_HISTORY = """
query ($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes { role content reasoning toolCallId toolCalls { id name arguments } }
  }
}
"""


# --- the tool loop --------------------------------------------------------------------


async def test_a_two_turn_tool_loop_passes_calls_results_and_reasoning_details(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, played(tool_call_answer()))
    sse.script(
        THINKER_UPSTREAM,
        played(chunk({"content": "It is 18 °C "}), chunk({"content": "in Zürich."}), usage()),
    )
    app = await stream_app()
    client = sdk(app)
    messages: list[Any] = [{"role": "user", "content": "Weather in Zürich?"}]
    first = await client.chat.completions.create(
        model=THINKER,
        messages=messages,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="auto",
        parallel_tool_calls=False,
        extra_body={"session_id": "v1-tools"},
    )
    (choice,) = first.choices
    assert choice.finish_reason == "tool_calls"
    message = choice.message
    assert message.content is None
    assert message.tool_calls is not None
    (tool_call,) = message.tool_calls
    assert (tool_call.id, tool_call.type) == ("call_w", "function")
    assert tool_call.function.name == "get_weather"
    assert tool_call.function.arguments == WEATHER_ARGS
    assert message.model_extra == {
        "reasoning": "The user wants the weather.",
        "reasoning_details": DETAILS,
    }
    sent = sse.chats[0].body
    assert sent["tools"] == [WEATHER_TOOL, TIME_TOOL]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", False)

    # The client sends the assistant turn back as the SDK returned it, and the result.
    messages += [
        message,
        {"role": "tool", "tool_call_id": tool_call.id, "content": '{"celsius": 18}'},
    ]
    second = await client.chat.completions.create(
        model=THINKER,
        messages=messages,
        tools=[WEATHER_TOOL, TIME_TOOL],
        extra_body={"session_id": "v1-tools"},
    )
    assert second.choices[0].message.content == "It is 18 °C in Zürich."
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.tool_calls is None
    assert sse.chats[1].body["messages"] == [
        {"role": "user", "content": "Weather in Zürich?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
                }
            ],
            "reasoning_details": DETAILS,
        },
        {"role": "tool", "content": '{"celsius": 18}', "tool_call_id": "call_w"},
    ]
    body = await app.graphql(TOOL_HISTORY, {"sessionId": "v1-tools"})
    # The session holds the whole loop: question, call (with its reasoning), result, answer.
    saved = body["data"]["chatHistory"]["nodes"]
    weather = {"id": "call_w", "name": "get_weather", "arguments": WEATHER_ARGS}
    assert [
        (m["role"], m["content"], m["reasoning"], m["toolCallId"], m["toolCalls"]) for m in saved
    ] == [
        ("USER", "Weather in Zürich?", None, None, []),
        ("ASSISTANT", "", "The user wants the weather.", None, [weather]),
        ("TOOL", '{"celsius": 18}', None, "call_w", []),
        ("ASSISTANT", "It is 18 °C in Zürich.", None, None, []),
    ]


async def test_streamed_parallel_tool_calls_accumulate_by_index_to_the_exact_arguments(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    def fragment(index: int, arguments: str, **first: str) -> bytes:
        call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if first:
            call.update(id=first["id"], type="function")
            call["function"]["name"] = first["name"]
        return chunk({"tool_calls": [call]})

    upstream = b"".join(
        [
            fragment(0, WEATHER_ARGS[:5], id="call_w", name="get_weather"),
            fragment(1, "", id="call_t", name="get_time"),
            fragment(1, TIME_ARGS[:11]),
            fragment(0, WEATHER_ARGS[5:40]),
            fragment(1, TIME_ARGS[11:]),
            fragment(0, WEATHER_ARGS[40:]),
            chunk({}, finish="tool_calls"),
            usage(),
        ]
    )
    sse.script(THINKER_UPSTREAM, split_everywhere(upstream))
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(
        model=THINKER,
        messages=[{"role": "user", "content": "Weather and time in Zürich?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    # What a client does with `delta.tool_calls`: one call per index, arguments appended.
    calls: dict[int, dict[str, str]] = {}
    fragments: list[Any] = []
    finish = []
    async for event in stream:
        (choice,) = event.choices
        finish.append(choice.finish_reason)
        for piece in choice.delta.tool_calls or ():
            fragments.append(piece)
            entry = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += piece.id or ""
            assert piece.function is not None
            entry["name"] += piece.function.name or ""
            entry["arguments"] += piece.function.arguments or ""
    assert calls == {
        0: {"id": "call_w", "name": "get_weather", "arguments": WEATHER_ARGS},
        1: {"id": "call_t", "name": "get_time", "arguments": TIME_ARGS},
    }
    # Only each call's first fragment names it.
    named = [(f.index, f.id, f.type, f.function.name) for f in fragments if f.id is not None]
    assert named == [
        (0, "call_w", "function", "get_weather"),
        (1, "call_t", "function", "get_time"),
    ]
    assert finish[-1] == "tool_calls" and set(finish[:-1]) == {None}
    assert sse.chats[0].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


async def test_the_sdks_stream_helper_assembles_the_tool_calls(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, split_everywhere(tool_call_answer(), size=13))
    app = await stream_app()
    async with sdk(app).chat.completions.stream(
        model=THINKER, messages=hello("Weather in Zürich?"), tools=[WEATHER_TOOL]
    ) as stream:
        done = [
            event async for event in stream if event.type == "tool_calls.function.arguments.done"
        ]
        final = await stream.get_final_completion()
    assert [(e.name, e.index, e.arguments) for e in done] == [("get_weather", 0, WEATHER_ARGS)]
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (tool_call,) = choice.message.tool_calls
    assert (tool_call.id, tool_call.function.name) == ("call_w", "get_weather")
    assert tool_call.function.arguments == WEATHER_ARGS


# --- reasoning ------------------------------------------------------------------------


async def test_streamed_reasoning_and_its_details_come_before_the_tool_call(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, split_everywhere(tool_call_answer(), size=5))
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(
        model=THINKER, messages=hello("Weather in Zürich?"), tools=[WEATHER_TOOL], stream=True
    )
    extras = [c.choices[0].delta.model_extra or {} async for c in stream if c.choices]
    assert "".join(e.get("reasoning", "") for e in extras) == "The user wants the weather."
    (details,) = [e["reasoning_details"] for e in extras if "reasoning_details" in e]
    assert details == DETAILS


def reasoning_answer() -> Stream:
    return played(
        chunk({"role": "assistant", "reasoning": "Zürich is "}),
        chunk({"reasoning": "in Switzerland."}),
        chunk({"content": "Sunny."}),
        chunk({}, finish="stop"),
        usage(prompt=20, completion=30, reasoning=12, cached=8),
    )


async def test_reasoning_whole_with_its_tokens_in_usage(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, reasoning_answer())
    app = await stream_app()
    completion = await sdk(app).chat.completions.create(
        model=THINKER,
        messages=hello("Weather in Zürich?"),
        max_tokens=2000,
        extra_body={"reasoning": {"max_tokens": 1000}},
    )
    message = completion.choices[0].message
    assert message.content == "Sunny."
    assert message.model_extra == {"reasoning": "Zürich is in Switzerland."}
    assert sse.chats[0].body["reasoning"] == {"max_tokens": 1000}
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 12
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 8
    # Priced from the listing: 12 uncached prompt tokens at $1/M, 8 cached at $0.25/M,
    # 30 completion tokens (12 of them reasoning) at $4/M.
    assert completion.usage.model_extra == {"cost": pytest.approx(0.000134)}


async def test_reasoning_streamed_as_delta_reasoning_and_usage_chunk(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, reasoning_answer())
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(
        model=THINKER,
        messages=hello("Weather in Zürich?"),
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [event async for event in stream]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    thinking = "".join((d.model_extra or {}).get("reasoning", "") for d in deltas)
    assert thinking == "Zürich is in Switzerland."
    assert "".join(d.content or "" for d in deltas) == "Sunny."
    # The reasoning came before the answer, as the upstream sent it.
    kinds = ["reasoning" if (d.model_extra or {}).get("reasoning") else "content" for d in deltas]
    assert kinds.index("content") > 0 and "reasoning" not in kinds[kinds.index("content") :]
    # OpenAI's reasoning_effort is OpenRouter's reasoning.effort upstream.
    assert sse.chats[0].body["reasoning"] == {"effort": "low"}
    final = chunks[-1].usage
    assert final is not None
    assert final.completion_tokens_details is not None
    assert final.completion_tokens_details.reasoning_tokens == 12
    assert final.prompt_tokens_details is not None
    assert final.prompt_tokens_details.cached_tokens == 8


async def test_excluded_reasoning_is_asked_for_and_not_returned(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, reasoning_answer())
    app = await stream_app()
    completion = await sdk(app).chat.completions.create(
        model=THINKER,
        messages=hello(),
        extra_body={"reasoning": {"effort": "high", "exclude": True}},
    )
    assert sse.chats[0].body["reasoning"] == {"effort": "high", "exclude": True}
    assert completion.choices[0].message.content == "Sunny."


async def test_reasoning_effort_reaches_hugging_face_as_reasoning_effort(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    # vLLM and DeepSeek servers name the thinking `reasoning_content`; the answer says
    # `reasoning`. The Hugging Face catalog does not say whether a model reasons: tried.
    r1 = LLAMA_HF_UPSTREAM
    sse.script(
        r1,
        played(
            chunk({"role": "assistant", "reasoning_content": "Hmm."}, model=r1),
            chunk({"content": "42"}, model=r1),
            chunk({}, finish="stop", model=r1),
        ),
    )
    app = await stream_app()
    completion = await sdk(app).chat.completions.create(
        model=LLAMA_HF, messages=hello("The answer?"), reasoning_effort="medium"
    )
    assert completion.choices[0].message.content == "42"
    assert (completion.choices[0].message.model_extra or {})["reasoning"] == "Hmm."
    sent = sse.chats[0].body
    assert sent["reasoning_effort"] == "medium" and "reasoning" not in sent


# --- structured output ----------------------------------------------------------------


async def test_a_json_schema_reaches_the_upstream(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, played(chunk({"content": '{"city":"Zürich","celsius":18}'})))
    app = await stream_app()
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
    }
    completion = await sdk(app).chat.completions.create(
        model=THINKER, messages=hello("Weather in Zürich as JSON"), response_format=response_format
    )
    assert json.loads(completion.choices[0].message.content or "") == {
        "city": "Zürich",
        "celsius": 18,
    }
    sent = sse.chats[0].body
    assert sent["response_format"] == response_format
    # Only OpenRouter providers that honour the schema may serve it.
    assert sent["provider"] == {"require_parameters": True}


class CityWeather(BaseModel):
    city: str
    celsius: float


class GetWeather(BaseModel):
    city: str


async def test_the_sdks_parse_helper_gets_its_schema_and_tool_through(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, played(chunk({"content": '{"city":"Zürich","celsius":18.5}'})))
    sse.script(
        THINKER_UPSTREAM,
        played(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_p",
                            "type": "function",
                            "function": {"name": "GetWeather", "arguments": '{"city": "Bern"}'},
                        }
                    ]
                }
            ),
            chunk({}, finish="tool_calls"),
        ),
    )
    app = await stream_app()
    client = sdk(app)
    answer = await client.chat.completions.parse(
        model=THINKER, messages=hello("Weather in Zürich as JSON"), response_format=CityWeather
    )
    assert answer.choices[0].message.parsed == CityWeather(city="Zürich", celsius=18.5)
    sent = sse.chats[0].body["response_format"]
    assert (sent["type"], sent["json_schema"]["name"], sent["json_schema"]["strict"]) == (
        "json_schema",
        "CityWeather",
        True,
    )
    assert sent["json_schema"]["schema"] == CityWeather.model_json_schema() | {
        "additionalProperties": False
    }

    called = await client.chat.completions.parse(
        model=THINKER,
        messages=hello("Weather in Bern?"),
        tools=[openai.pydantic_function_tool(GetWeather)],
    )
    (tool_call,) = called.choices[0].message.tool_calls or []
    assert tool_call.function.parsed_arguments == GetWeather(city="Bern")
    assert sse.chats[1].body["tools"][0]["function"]["name"] == "GetWeather"


async def test_a_json_schema_is_refused_for_a_model_without_support(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    app = await stream_app()
    client = sdk(app)
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA},
    }
    # gpt-4o-mini's listing has response_format (JSON mode) but not structured_outputs.
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(
                model=GPT_MINI, messages=hello(), response_format=response_format, stream=stream
            )
        assert refused.value.body == {
            "message": f"{GPT_MINI} does not support structured output (json_schema)",
            "type": "invalid_request_error",
            "param": "response_format",
            "code": "bad_user_input",
        }
    assert sse.chats == []
    # JSON mode it has.
    sse.script(GPT_MINI_UPSTREAM, played(chunk({"content": "{}"}, model=GPT_MINI_UPSTREAM)))
    completion = await client.chat.completions.create(
        model=GPT_MINI, messages=hello(), response_format={"type": "json_object"}
    )
    assert completion.choices[0].message.content == "{}"
    assert sse.chats[0].body["response_format"] == {"type": "json_object"}


# --- routing --------------------------------------------------------------------------


async def test_openrouters_provider_object_is_the_routing(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(THINKER_UPSTREAM, played(chunk({"content": "Routed"})))
    app = await stream_app()
    await sdk(app).chat.completions.create(
        model=THINKER,
        # Some clients send an empty `tool_calls` on every turn: no calls, not a refusal.
        messages=[{"role": "user", "content": "Say hello", "tool_calls": []}],
        extra_body={
            "provider": {
                "order": ["deepinfra/turbo", "Together"],
                "allow_fallbacks": False,
                "sort": "price",
                "max_price": {"prompt": 1, "completion": 2.5},
            }
        },
    )
    assert sse.chats[0].body["provider"] == {
        "order": ["deepinfra/turbo", "Together"],
        "allow_fallbacks": False,
        "sort": "price",
        "max_price": {"prompt": 1, "completion": 2.5},
    }
    assert sse.chats[0].body["messages"] == [{"role": "user", "content": "Say hello"}]


# --- refusals name the body's field ---------------------------------------------------


async def test_the_chat_inputs_refusals_name_the_openai_field(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp, sdk: Clients
) -> None:
    app = await stream_app()
    client = sdk(app)
    call_w = {
        "id": "call_w",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    bad_name = {"type": "function", "function": {"name": "get weather!"}}
    flat_params = {"type": "function", "function": {"name": "f", "parameters": [1]}}
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        (MISTRAL, {"tools": [WEATHER_TOOL]}, "tools", f"{MISTRAL} does not support tools"),
        (MISTRAL, {"reasoning_effort": "high"}, "reasoning_effort", "does not support reasoning"),
        (MISTRAL, {"reasoning": {"effort": "high"}}, "reasoning", "does not support reasoning"),
        (
            MISTRAL,
            {"response_format": {"type": "json_object"}},
            "response_format",
            "does not support structured output",
        ),
        (THINKER, {"tools": [bad_name]}, "tools[0].function.name", "`options.tools[0].name`"),
        (THINKER, {"tools": [flat_params]}, "tools[0].function.parameters", "`options.tools"),
        (THINKER, {"tools": [WEATHER_TOOL], "tool_choice": "nope"}, "tool_choice", "toolChoice"),
        (THINKER, {"tool_choice": "auto"}, "tool_choice", "toolChoice needs options.tools"),
        (
            THINKER,
            {"response_format": {"type": "json_schema", "json_schema": {"name": "w"}}},
            "response_format.json_schema.schema",
            "JSON_SCHEMA needs a schema",
        ),
        (
            THINKER,
            {"max_tokens": 100, "reasoning": {"max_tokens": 100}},
            "reasoning.max_tokens",
            "reasoning maxTokens must be less than",
        ),
        (
            THINKER,
            {"reasoning_effort": "low", "reasoning": {"effort": "low"}},
            "reasoning_effort",
            "give `reasoning_effort` or `reasoning`, not both",
        ),
        (THINKER, {"reasoning_effort": "max"}, "reasoning_effort", "`reasoning_effort`: Input"),
        (
            THINKER,
            {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
            "messages[0].tool_call_id",
            "toolCallId names no tool call",
        ),
        (
            THINKER,
            {"messages": [{"role": "tool", "content": "42"}]},
            "messages[0].tool_call_id",
            "a TOOL turn needs the toolCallId",
        ),
        (
            THINKER,
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [{**call_w, "function": {"name": "a b", "arguments": "{}"}}],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.name",
            "`input.messages[1].toolCalls[0].name`",
        ),
        (
            THINKER,
            {"messages": [{"role": "user", "content": "hi", "tool_calls": [call_w]}]},
            "messages[0].tool_calls",
            "toolCalls belong on ASSISTANT turns",
        ),
        (
            THINKER,
            {"messages": [{"role": "assistant", "content": "x", "reasoning_details": "opaque"}]},
            "messages[0].reasoning_details",
            "`input.messages[0].reasoningDetails` must be a list of objects",
        ),
        (
            MISTRAL,
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "What is this?"},
                            {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}},
                        ],
                    }
                ]
            },
            "messages[0].content[1]",
            f"{MISTRAL} does not accept image input",
        ),
        (
            THINKER,
            {"provider": {"order": ["bad provider!"]}},
            "provider.order[0]",
            "a provider name is",
        ),
        (
            THINKER,
            {"provider": {"max_price": {"prompt": -1}}},
            "provider.max_price.prompt",
            "`options.routing.maxPrice.prompt` must be between",
        ),
        (THINKER, {"provider": {"only": ["openai"]}}, "provider.only", "`provider.only`: unknown"),
        (THINKER, {"functions": [{"name": "f"}]}, "functions", "`functions` is not supported"),
        (THINKER, {"max_completion_tokens": 0}, "max_completion_tokens", "maxTokens must be"),
    ]
    for model, extra, param, message in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model=model, messages=hello(), extra_body=extra)
        body = refused.value.body
        assert isinstance(body, dict)
        assert (body["param"], body["code"]) == (param, "bad_user_input"), (extra, body)
        assert body["message"].startswith(message) or message in body["message"], (extra, body)
    assert sse.chats == []


async def test_a_streamed_refusal_is_a_400_before_any_upstream_call(
    sse: FakeUpstream, thinker: None, stream_app: StreamApp
) -> None:
    app = await stream_app()
    status, _, body = await call(
        app,
        "POST",
        "/v1/chat/completions",
        json={
            "model": MISTRAL,
            "messages": hello(),
            "stream": True,
            "tools": [WEATHER_TOOL],
        },
    )
    assert status == 400
    assert body["error"]["param"] == "tools"
    assert sse.chats == []
