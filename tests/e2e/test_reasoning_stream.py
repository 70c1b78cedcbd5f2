"""A thinking model's answer streamed from an OpenRouter-shaped SSE upstream to a frontend,
over graphql-transport-ws and over GraphQL-over-SSE: reasoning deltas, content deltas,
and a ChatCompleted priced from the catalog's cache-read, cache-write and reasoning
prices (the upstream sends no `usage.cost`), with the generation id from the header."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.conftest import (
    KEEPALIVE,
    THINKER,
    THINKER_UPSTREAM,
    Gateway,
    chunk,
    usage_chunk,
)
from tests.streaming.conftest import GraphQLWebSocket, Outcome, usage_records
from tests.streaming.graphql_sse import sse_operation
from tests.support.fake_upstream import FakeUpstream, Stream, Wait
from tests.support.server import RunningApp

STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted {
      model provider finishReason content reasoning reasoningDetails generationId
      toolCalls { id name arguments }
      usage { promptTokens completionTokens totalTokens estimated
              reasoningTokens cachedPromptTokens cacheWriteTokens }
      cost { inputCost outputCost totalCost known }
    }
    ... on ChatFailed { code message partialContent partialReasoning }
  }
}
"""
USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "total_tokens": 1500,
    "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 300},
}
# 300 plain prompt tokens at 2 USD/M, 600 cached at 0.5, 100 written at 2.5;
# 200 plain completion tokens at 8, 300 reasoning at 10.
INPUT_COST = Decimal("0.0006") + Decimal("0.0003") + Decimal("0.00025")
OUTPUT_COST = Decimal("0.0016") + Decimal("0.003")


def thinking_answer(gates: list[asyncio.Event]) -> Stream:
    """Each piece waits until the frontend got the one before (else the gateway merges
    pieces that arrive together into one delta, as it should)."""
    first, second, third = (Wait(gate) for gate in gates)
    return Stream(
        (
            KEEPALIVE,
            chunk({"role": "assistant", "content": ""}),
            chunk(
                {
                    "content": "",
                    "reasoning": "Let me ",
                    "reasoning_details": [
                        {
                            "type": "reasoning.text",
                            "text": "Let me ",
                            "format": "anthropic-claude-v1",
                            "index": 0,
                        }
                    ],
                }
            ),
            first,
            KEEPALIVE,
            chunk(
                {
                    "content": "",
                    "reasoning": "think.",
                    "reasoning_details": [
                        {
                            "type": "reasoning.text",
                            "text": "think.",
                            "index": 0,
                            "signature": "c2ln",
                        }
                    ],
                }
            ),
            second,
            chunk({"content": "Hello"}),
            third,
            chunk({"content": " world"}),
            chunk({}, finish_reason="stop"),
            usage_chunk(USAGE),
        ),
        headers={"X-Generation-Id": "gen-header-42"},
    )


def variables() -> dict[str, Any]:
    return {
        "input": {
            "model": THINKER,
            "messages": [{"role": "USER", "content": "Greet me, thoughtfully"}],
            "options": {"reasoning": {"effort": "HIGH"}},
        }
    }


async def over_ws(app: RunningApp, gates: list[asyncio.Event]) -> Outcome:
    """The subscription's events; each one received opens the next gate."""
    client = await GraphQLWebSocket.open(app)
    outcome = Outcome()
    try:
        op_id = await client.subscribe(STREAM, variables())
        while not outcome.ended:
            if await client.event(op_id, outcome) is not None and gates:
                gates.pop(0).set()
    finally:
        await client.close()
    return outcome


async def over_sse(app: RunningApp, gates: list[asyncio.Event]) -> Outcome:
    outcome = Outcome()
    async with sse_operation(app, STREAM, variables()) as operation:
        assert operation.response.status == 200
        while not outcome.completed:
            if await operation.event(outcome) is not None and gates:
                gates.pop(0).set()
    return outcome


@pytest.mark.parametrize("transport", [over_ws, over_sse], ids=["websocket", "sse"])
async def test_a_reasoning_stream_reaches_the_frontend_priced_exactly(
    gateway: Gateway, fake: FakeUpstream, store: Any, transport: Any
) -> None:
    gates = [asyncio.Event() for _ in range(3)]
    fake.script(THINKER_UPSTREAM, thinking_answer(gates))
    app = await gateway()

    outcome = await transport(app, list(gates))

    assert outcome.errors == [] and outcome.completed
    assert [(e["__typename"], e.get("index"), e.get("content")) for e in outcome.events[:-1]] == [
        ("ChatReasoningDelta", 0, "Let me "),
        ("ChatReasoningDelta", 1, "think."),
        ("ChatDelta", 0, "Hello"),
        ("ChatDelta", 1, " world"),
    ]
    assert {e["model"] for e in outcome.events} == {THINKER}
    completed = outcome.events[-1]
    assert completed["__typename"] == "ChatCompleted"
    assert completed["finishReason"] == "stop"
    assert completed["content"] == "Hello world"
    assert completed["reasoning"] == "Let me think."
    assert completed["reasoningDetails"] == [
        {
            "type": "reasoning.text",
            "text": "Let me think.",
            "format": "anthropic-claude-v1",
            "index": 0,
            "signature": "c2ln",
        }
    ]
    assert completed["toolCalls"] == []
    assert completed["generationId"] == "gen-header-42"
    assert completed["usage"] == {
        "promptTokens": 1000,
        "completionTokens": 500,
        "totalTokens": 1500,
        "estimated": False,
        "reasoningTokens": 300,
        "cachedPromptTokens": 600,
        "cacheWriteTokens": 100,
    }
    assert completed["cost"] == {
        "inputCost": float(INPUT_COST),
        "outputCost": float(OUTPUT_COST),
        "totalCost": float(INPUT_COST + OUTPUT_COST),
        "known": True,
    }

    (call,) = fake.chats
    assert call.body["model"] == THINKER_UPSTREAM
    assert call.body["reasoning"] == {"effort": "high"}
    assert call.body["stream"] is True
    assert "reasoning_effort" not in call.body

    # The usage record keeps the token kinds and the exact cost.
    (record,) = await usage_records(store)
    assert record["cost"].to_decimal() == INPUT_COST + OUTPUT_COST
    assert (
        record["reasoningTokens"],
        record["cachedPromptTokens"],
        record["cacheWriteTokens"],
    ) == (300, 600, 100)
