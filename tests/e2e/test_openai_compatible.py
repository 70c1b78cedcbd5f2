"""An extra OpenAI-compatible server (vLLM, Ollama, DeepSeek's shape) end to end: it gets
OpenAI's dialect, and its whole (non-streamed) answer with `reasoning_content` and whole
tool calls reaches the frontend's stream as reasoning and tool-call events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.e2e.conftest import Gateway, data_of
from tests.streaming.conftest import GraphQLWebSocket
from tests.support.fake_upstream import FakeUpstream, Reply

LOCAL_UPSTREAM = "qwen3:8b"
LOCAL = f"local:{LOCAL_UPSTREAM}"
STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { content index }
    ... on ChatReasoningDelta { content index }
    ... on ChatToolCallDelta { index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted {
      model finishReason reasoning reasoningDetails toolCalls { id name arguments }
      usage { promptTokens completionTokens reasoningTokens cachedPromptTokens }
      cost { totalCost known }
    }
    ... on ChatFailed { code message }
  }
}
"""
WHOLE_ANSWER = {
    "id": "chatcmpl-local-1",
    "object": "chat.completion",
    "model": LOCAL_UPSTREAM,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "reasoning_content": "Two cities, two calls.",
                "tool_calls": [
                    {
                        "id": "call_r",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
                    },
                    {
                        "id": "call_m",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Milan"}'},
                    },
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 20},
    },
}


async def test_a_whole_answer_of_an_openai_compatible_server_streams_as_events(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.set("/local/models", Reply(body={"data": [{"id": LOCAL_UPSTREAM}]}, close=True))
    fake.script(LOCAL_UPSTREAM, Reply(body=WHOLE_ANSWER))
    providers = [
        {
            "name": "local",
            "base_url": fake.url("local"),
            "prompt_price_per_million": "1",
            "completion_price_per_million": "3",
        }
    ]
    app = await gateway(AIPASTA_PROVIDERS=providers)
    variables: dict[str, Any] = {
        "input": {
            "model": LOCAL,
            "messages": [
                {"role": "USER", "content": "Weather in Rome and Milan?"},
            ],
            "options": {
                "tools": [{"name": "weather", "parameters": {"type": "object"}}],
                "reasoning": {"effort": "MINIMAL"},
                "routing": {"sort": "PRICE"},
            },
        }
    }
    client = await GraphQLWebSocket.open(app)
    try:
        outcome = await client.run(STREAM, variables)
    finally:
        await client.close()

    assert outcome.errors == [] and outcome.completed
    kinds = [(e["__typename"], e.get("index")) for e in outcome.events]
    assert kinds == [
        ("ChatReasoningDelta", 0),
        ("ChatToolCallDelta", 0),
        ("ChatToolCallDelta", 1),
        ("ChatCompleted", None),
    ]
    assert outcome.events[0]["content"] == "Two cities, two calls."
    assert [(e["toolCallIndex"], e["id"], e["argumentsDelta"]) for e in outcome.events[1:3]] == [
        (0, "call_r", '{"city":"Rome"}'),
        (1, "call_m", '{"city":"Milan"}'),
    ]
    completed = outcome.events[-1]
    assert completed["finishReason"] == "tool_calls"
    assert completed["reasoning"] == "Two cities, two calls."
    assert completed["toolCalls"] == [
        {"id": "call_r", "name": "weather", "arguments": '{"city":"Rome"}'},
        {"id": "call_m", "name": "weather", "arguments": '{"city":"Milan"}'},
    ]
    assert completed["usage"] == {
        "promptTokens": 100,
        "completionTokens": 50,
        "reasoningTokens": 20,
        "cachedPromptTokens": 40,
    }
    # No cache or reasoning prices configured: the prompt and completion prices.
    assert completed["cost"] == {
        "totalCost": float((100 * Decimal(1) + 50 * Decimal(3)) / 1_000_000),
        "known": True,
    }

    (call,) = fake.chats
    assert call.provider == "local"
    assert call.body["model"] == LOCAL_UPSTREAM
    assert call.body["reasoning_effort"] == "minimal"
    assert not {"reasoning", "provider"} & call.body.keys()
    models = data_of(await app.graphql('{ models(filter: {provider: "local"}) { nodes { id } } }'))
    assert models["models"]["nodes"] == [{"id": LOCAL}]
