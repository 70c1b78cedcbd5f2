"""A two-turn tool loop through the `chat` mutation with a session, against an
OpenRouter-shaped upstream: two parallel tool calls streamed in interleaved fragments
split in awkward places, sent back with their reasoning details and the tools' results;
then what history and the usage report show."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import THINKER, THINKER_UPSTREAM, Gateway, chunk, data_of, usage_chunk
from tests.streaming.conftest import usage_records
from tests.support.fake_upstream import FakeUpstream, Stream

CHAT = """
mutation Chat($input: ChatInput!) {
  chat(input: $input) {
    model finishReason messageId generationId reasoning reasoningDetails
    message { role content }
    toolCalls { id name arguments }
    usage { promptTokens completionTokens reasoningTokens cachedPromptTokens cacheWriteTokens }
    cost { totalCost known }
  }
}
"""
HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes {
      role isUser content model status reasoning reasoningDetails generationId toolCallId
      toolCalls { id name arguments }
    }
  }
}
"""
USAGE = """
{ usage { totalRequests rows { key requests promptTokens completionTokens
                               reasoningTokens cachedPromptTokens cacheWriteTokens } } }
"""
SESSION = "trip-planning"
QUESTION = "Weather in Rome, and the time there?"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CLOCK = {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {}}}}
OPTIONS = {
    "tools": [WEATHER, CLOCK],
    "toolChoice": "auto",
    "parallelToolCalls": True,
    "reasoning": {"effort": "HIGH"},
    "routing": {
        "order": ["anthropic", "Google AI Studio"],
        "allowFallbacks": False,
        "sort": "PRICE",
        "maxPrice": {"prompt": 1.5, "completion": 4},
    },
}
ENCRYPTED = {
    "type": "reasoning.encrypted",
    "data": "ZW5jcnlwdGVkLXRob3VnaHRz",
    "id": "rs_0a1b",
    "format": "openai-responses-v1",
    "index": 0,
}
SUMMARY = {
    "type": "reasoning.summary",
    "summary": "Two lookups, in parallel.",
    "format": "openai-responses-v1",
    "index": 1,
}
# As the model writes them, split inside keys, escapes and multi-byte text.
WEATHER_ARGUMENTS = '{"city": "Rom\\u00e9 \u2614", "units":"metric"}'
CLOCK_ARGUMENTS = '{"tz":"Europe/Rome"}'


def calls(index: int, id: str | None = None, name: str | None = None, args: str = "") -> Any:
    function: dict[str, Any] = {"arguments": args}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if id is not None:
        call |= {"id": id, "type": "function"}
    return chunk({"content": None, "tool_calls": [call]}, id="gen-turn-1")


def calling_turn() -> Stream:
    w, c = WEATHER_ARGUMENTS, CLOCK_ARGUMENTS
    return Stream(
        (
            chunk({"role": "assistant", "content": ""}, id="gen-turn-1"),
            chunk(
                {"reasoning": "Two look", "reasoning_details": [SUMMARY]},
                id="gen-turn-1",
            ),
            chunk({"reasoning": "ups.", "reasoning_details": [ENCRYPTED]}, id="gen-turn-1"),
            calls(0, "call_weather", "get_weather"),
            calls(0, args=w[:1]),
            calls(1, "call_clock", "get_time", c[:4]),
            calls(0, args=w[1:13]),  # ... "Rom\
            calls(1, args=c[4:5]),
            calls(0, args=w[13:18]),  # u00e9 split from its backslash
            calls(0, args=w[18:20]),
            calls(1, args=c[5:]),
            calls(0, args=w[20:]),
            chunk({}, finish_reason="tool_calls", id="gen-turn-1"),
            usage_chunk(
                {
                    "prompt_tokens": 400,
                    "completion_tokens": 120,
                    "total_tokens": 520,
                    "prompt_tokens_details": {"cached_tokens": 300},
                    "completion_tokens_details": {"reasoning_tokens": 80},
                }
            ),
        ),
        headers={"X-Generation-Id": "gen-turn-1"},
    )


def answering_turn() -> Stream:
    return Stream(
        (
            chunk({"role": "assistant", "content": "Rome: 21°C"}, id="gen-turn-2"),
            chunk({"content": ", 14:05."}, id="gen-turn-2"),
            chunk({}, finish_reason="stop", id="gen-turn-2"),
            usage_chunk(
                {
                    "prompt_tokens": 600,
                    "completion_tokens": 20,
                    "total_tokens": 620,
                    "prompt_tokens_details": {"cached_tokens": 400, "cache_write_tokens": 50},
                    "completion_tokens_details": {"reasoning_tokens": 5},
                }
            ),
        ),
        # No header: the chunks' id names the generation.
    )


def chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "input": {"model": THINKER, "messages": messages, "options": OPTIONS, "sessionId": SESSION}
    }


async def test_a_two_turn_tool_loop_round_trips_through_upstream_history_and_usage(
    gateway: Gateway, fake: FakeUpstream, store: Any
) -> None:
    fake.script(THINKER_UPSTREAM, calling_turn(), answering_turn())
    app = await gateway()
    question = {"role": "USER", "content": QUESTION}

    # Turn 1: the model calls two tools.
    first = data_of(await app.graphql(CHAT, chat([question])))["chat"]
    assert first["finishReason"] == "tool_calls"
    assert first["message"] == {"role": "ASSISTANT", "content": ""}
    assert first["toolCalls"] == [
        {"id": "call_weather", "name": "get_weather", "arguments": WEATHER_ARGUMENTS},
        {"id": "call_clock", "name": "get_time", "arguments": CLOCK_ARGUMENTS},
    ]
    assert first["reasoning"] == "Two lookups."
    assert first["reasoningDetails"] == [SUMMARY, ENCRYPTED]
    assert first["generationId"] == "gen-turn-1"
    assert first["usage"] == {
        "promptTokens": 400,
        "completionTokens": 120,
        "reasoningTokens": 80,
        "cachedPromptTokens": 300,
        "cacheWriteTokens": 0,
    }
    assert first["messageId"] is not None

    # Turn 2: the assistant turn goes back as it came, with the tools' results.
    assistant = {
        "role": "ASSISTANT",
        "content": "",
        "toolCalls": first["toolCalls"],
        "reasoningDetails": first["reasoningDetails"],
    }
    results = [
        {"role": "TOOL", "toolCallId": "call_weather", "content": '{"temp_c": 21}'},
        {"role": "TOOL", "toolCallId": "call_clock", "content": '"14:05"'},
    ]
    second = data_of(await app.graphql(CHAT, chat([question, assistant, *results])))["chat"]
    assert second["message"]["content"] == "Rome: 21°C, 14:05."
    assert (second["finishReason"], second["toolCalls"]) == ("stop", [])
    assert second["generationId"] == "gen-turn-2"

    turn_one, turn_two = fake.chats
    expected_tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather of a city",
                "parameters": WEATHER["parameters"],
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": CLOCK["parameters"]}},
    ]
    expected_provider = {
        "order": ["anthropic", "Google AI Studio"],
        "allow_fallbacks": False,
        "sort": "price",
        "max_price": {"prompt": 1.5, "completion": 4},
    }
    assert turn_one.body["messages"] == [{"role": "user", "content": QUESTION}]
    assert turn_two.body == {
        "model": THINKER_UPSTREAM,
        "messages": [
            {"role": "user", "content": QUESTION},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": WEATHER_ARGUMENTS},
                    },
                    {
                        "id": "call_clock",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": CLOCK_ARGUMENTS},
                    },
                ],
                "reasoning_details": [SUMMARY, ENCRYPTED],
            },
            {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_weather"},
            {"role": "tool", "content": '"14:05"', "tool_call_id": "call_clock"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning": {"effort": "high"},
        "tools": expected_tools,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "provider": expected_provider,
    }
    # The arguments went out byte for byte as the model wrote them.
    assert json.loads(turn_two.body["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Romé ☔",
        "units": "metric",
    }

    history = data_of(await app.graphql(HISTORY, {"sessionId": SESSION}))["chatHistory"]["nodes"]
    assert [(n["role"], n["isUser"], n["content"]) for n in history] == [
        ("USER", True, QUESTION),
        ("ASSISTANT", False, ""),
        ("TOOL", False, '{"temp_c": 21}'),
        ("TOOL", False, '"14:05"'),
        ("ASSISTANT", False, "Rome: 21°C, 14:05."),
    ]
    asked, called, weather, clock, answered = history
    assert called["toolCalls"] == first["toolCalls"]
    assert called["reasoning"] == "Two lookups."
    assert called["reasoningDetails"] == [SUMMARY, ENCRYPTED]
    assert (called["generationId"], called["model"], called["status"]) == (
        "gen-turn-1",
        THINKER,
        "COMPLETE",
    )
    assert (weather["toolCallId"], clock["toolCallId"]) == ("call_weather", "call_clock")
    assert weather["toolCalls"] == clock["toolCalls"] == asked["toolCalls"] == []
    assert (answered["generationId"], answered["reasoning"], answered["toolCalls"]) == (
        "gen-turn-2",
        None,
        [],
    )

    sessions = data_of(
        await app.graphql("{ chatSessions { nodes { id title messageCount lastMessage } } }")
    )
    assert sessions["chatSessions"]["nodes"] == [
        # Neither the call-only answer nor the tools' results are the last message shown.
        {"id": SESSION, "title": QUESTION, "messageCount": 5, "lastMessage": "Rome: 21°C, 14:05."}
    ]

    await usage_records(store, count=2)
    report = data_of(await app.graphql(USAGE))["usage"]
    assert report["totalRequests"] == 2
    assert report["rows"] == [
        {
            "key": THINKER,
            "requests": 2,
            "promptTokens": 1000,
            "completionTokens": 140,
            "reasoningTokens": 85,
            "cachedPromptTokens": 700,
            "cacheWriteTokens": 50,
        }
    ]
