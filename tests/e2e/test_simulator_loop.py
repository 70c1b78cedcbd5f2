"""The built-in simulator (OpenRouter's shape, in the app) through the whole gateway: a
thinking model calls a tool over the websocket stream, the loop goes on through `chat`
with the reasoning details and the tool's result, and history keeps both turns. The
simulator reports `usage.cost`, which wins over the catalog's prices."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.conftest import Gateway, data_of
from tests.streaming.conftest import GraphQLWebSocket

REASONER = "simulator:sim/reasoner"
STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { content index }
    ... on ChatReasoningDelta { content index }
    ... on ChatToolCallDelta { index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted {
      finishReason reasoning reasoningDetails generationId messageId
      toolCalls { id name arguments }
      usage { completionTokens reasoningTokens }
      cost { totalCost known }
    }
    ... on ChatFailed { code message }
  }
}
"""
CHAT = """
mutation ($input: ChatInput!) {
  chat(input: $input) {
    finishReason message { content } toolCalls { id } generationId
    usage { promptTokens cachedPromptTokens }
  }
}
"""
HISTORY = """
query ($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes { role content toolCallId reasoning generationId toolCalls { id name arguments } }
  }
}
"""
WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def chat_input(messages: list[dict[str, Any]], tool_choice: str) -> dict[str, Any]:
    return {
        "input": {
            "model": REASONER,
            "messages": messages,
            "sessionId": "sim-loop",
            "options": {
                "tools": [WEATHER],
                "toolChoice": tool_choice,
                "reasoning": {"effort": "LOW"},
            },
        }
    }


async def test_a_tool_loop_with_the_built_in_simulator(gateway: Gateway) -> None:
    app = await gateway(
        AIPASTA_SIMULATOR="on",
        AIPASTA_SIMULATOR_TOKEN_DELAY_MS=0,
        # Only the simulator answers chats here.
        OPENROUTER_API_KEY=None,
        HUGGINGFACE_API_KEY=None,
    )
    question = {"role": "USER", "content": "Weather in Rome?"}
    client = await GraphQLWebSocket.open(app)
    try:
        outcome = await client.run(STREAM, chat_input([question], "get_weather"))
    finally:
        await client.close()

    assert outcome.errors == [] and outcome.completed, outcome
    *deltas, completed = outcome.events
    reasoning = [e for e in deltas if e["__typename"] == "ChatReasoningDelta"]
    calls = [e for e in deltas if e["__typename"] == "ChatToolCallDelta"]
    assert reasoning and calls
    assert [e["index"] for e in reasoning] == list(range(len(reasoning)))
    assert [e["index"] for e in calls] == list(range(len(calls)))
    assert completed["__typename"] == "ChatCompleted"
    assert completed["finishReason"] == "tool_calls"
    assert completed["reasoning"] == "".join(e["content"] for e in reasoning)
    (call,) = completed["toolCalls"]
    assert call["name"] == "get_weather"
    assert call["arguments"] == "".join(e["argumentsDelta"] for e in calls)
    assert set(json.loads(call["arguments"])) == {"city"}
    # One reasoning item, its text joined from the streamed pieces.
    assert completed["reasoningDetails"] == [
        {"type": "reasoning.text", "text": completed["reasoning"], "format": "unknown", "index": 0}
    ]
    # The simulator thinks one token a word (its pieces may reach the client merged).
    assert completed["usage"]["reasoningTokens"] == len(completed["reasoning"].split())
    assert completed["cost"]["known"] and completed["cost"]["totalCost"] > 0
    assert completed["generationId"].startswith("gen-")

    assistant = {
        "role": "ASSISTANT",
        "content": "",
        "toolCalls": completed["toolCalls"],
        "reasoningDetails": completed["reasoningDetails"],
    }
    result = {"role": "TOOL", "toolCallId": call["id"], "content": '{"temp_c": 21}'}
    second = data_of(await app.graphql(CHAT, chat_input([question, assistant, result], "none")))
    answer = second["chat"]
    assert answer["finishReason"] == "stop"
    assert answer["message"]["content"]
    assert answer["toolCalls"] == []
    # The simulator reads the earlier turns from its cache.
    assert 0 < answer["usage"]["cachedPromptTokens"] < answer["usage"]["promptTokens"]

    history = data_of(await app.graphql(HISTORY, {"sessionId": "sim-loop"}))
    nodes = history["chatHistory"]["nodes"]
    assert [n["role"] for n in nodes] == ["USER", "ASSISTANT", "TOOL", "ASSISTANT"]
    assert nodes[1]["toolCalls"] == completed["toolCalls"]
    assert nodes[1]["reasoning"] == completed["reasoning"]
    assert nodes[2]["toolCallId"] == call["id"]
    assert nodes[3]["content"] == answer["message"]["content"]
    assert nodes[3]["generationId"] == answer["generationId"]
