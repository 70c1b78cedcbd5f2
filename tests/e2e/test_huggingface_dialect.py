"""The Hugging Face router gets its own dialect end to end: routing as a model-id suffix,
OpenAI's `reasoning_effort`, and no `reasoning_details` in the messages (it refuses fields
it does not know), while its `reasoning_content` still streams back as reasoning."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import QWEN, QWEN_UPSTREAM, Gateway, chunk, data_of, usage_chunk
from tests.support.fake_upstream import FakeUpstream, Stream

CHAT = """
mutation Chat($input: ChatInput!) {
  chat(input: $input) {
    model provider finishReason reasoning reasoningDetails generationId message { content }
    usage { promptTokens completionTokens reasoningTokens }
    cost { inputCost outputCost totalCost known }
  }
}
"""
LOOKUP = {"name": "lookup", "parameters": {"type": "object"}}
DETAILS = [{"type": "reasoning.text", "text": "from another upstream", "index": 0}]


def answer(model: str) -> Stream:
    return Stream(
        (
            chunk({"role": "assistant", "reasoning_content": "Short."}, id="hf-1", model=model),
            chunk({"content": "Sunny."}, id="hf-1", model=model),
            chunk({}, finish_reason="stop", id="hf-1", model=model),
            usage_chunk(
                {
                    "prompt_tokens": 2000,
                    "completion_tokens": 1000,
                    "completion_tokens_details": {"reasoning_tokens": 400},
                },
                model=model,
            ),
        )
    )


def variables(routing: dict[str, Any]) -> dict[str, Any]:
    return {
        "input": {
            "model": QWEN,
            "messages": [
                {"role": "USER", "content": "Weather?"},
                {
                    "role": "ASSISTANT",
                    "content": "",
                    "toolCalls": [{"id": "call_1", "name": "lookup", "arguments": "{}"}],
                    "reasoningDetails": DETAILS,
                },
                {"role": "TOOL", "toolCallId": "call_1", "content": "sunny"},
            ],
            "options": {
                "tools": [LOOKUP],
                "reasoning": {"effort": "LOW"},
                "routing": routing,
            },
        }
    }


@pytest.mark.parametrize(
    ("routing", "suffix"),
    [
        pytest.param({"sort": "PRICE"}, ":cheapest", id="cheapest"),
        pytest.param({"sort": "LATENCY"}, ":fastest", id="fastest"),
        pytest.param({"order": ["novita"], "allowFallbacks": False}, ":novita", id="provider"),
    ],
)
async def test_hugging_face_gets_routing_suffixes_reasoning_effort_and_no_reasoning_details(
    gateway: Gateway, fake: FakeUpstream, routing: dict[str, Any], suffix: str
) -> None:
    fake.script(QWEN_UPSTREAM + suffix, answer(QWEN_UPSTREAM + suffix))
    app = await gateway()

    chat = data_of(await app.graphql(CHAT, variables(routing)))["chat"]

    assert chat["model"] == QWEN
    assert chat["provider"] == "huggingface"
    assert chat["message"]["content"] == "Sunny."
    assert chat["reasoning"] == "Short."
    assert chat["reasoningDetails"] is None
    # Only OpenRouter's chunk ids name a generation.
    assert chat["generationId"] is None
    assert chat["usage"] == {"promptTokens": 2000, "completionTokens": 1000, "reasoningTokens": 400}
    # The cheapest live provider's prices: 0.05 and 0.2 USD per million.
    assert chat["cost"] == {
        "inputCost": 0.0001,
        "outputCost": 0.0002,
        "totalCost": 0.0003,
        "known": True,
    }

    (call,) = fake.chats
    assert call.provider == "hf"
    body = call.body
    assert body["model"] == QWEN_UPSTREAM + suffix
    assert body["reasoning_effort"] == "low"
    assert "reasoning" not in body and "provider" not in body
    assert body["tools"] == [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ]
    assert body["messages"] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]
