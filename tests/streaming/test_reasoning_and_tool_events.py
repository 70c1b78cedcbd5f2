"""The reasoning and tool-call members of ChatStreamEvent reach clients over both
transports (graphql-transport-ws and graphql-sse), from the real app.

The app's OpenRouter client is swapped for the in-process FakeProvider, so these tests
are about the gateway's events, not about parsing an upstream's wire format."""

from __future__ import annotations

from typing import Any

import pytest

from providers.chat import ChatDelta, TokenUsage, ToolCallFragment
from providers.errors import ProviderUnavailable
from providers.fake import FakeProvider
from tests.streaming.conftest import GPT_MINI, GraphQLWebSocket, Outcome, StreamApp, user_says
from tests.streaming.graphql_sse import sse_run
from tests.support.server import RunningApp

STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted { finishReason content reasoning reasoningDetails generationId
                           toolCalls { id name arguments } usage { reasoningTokens } }
    ... on ChatFailed { code partialReasoning partialToolCalls { id name arguments } }
  }
}
"""
DETAILS = [{"type": "reasoning.encrypted", "data": "b3BhcXVl", "id": "rs_1", "index": 0}]
TOOL = {"name": "lookup", "parameters": {"type": "object"}}


def variables() -> dict[str, Any]:
    return {
        "input": {
            "model": GPT_MINI,
            "messages": user_says("Look it up"),
            "options": {"tools": [TOOL]},
        }
    }


async def app_with_fake(stream_app: StreamApp) -> tuple[RunningApp, FakeProvider]:
    app = await stream_app()
    fake = FakeProvider("openrouter")
    # The listing says it takes tools, so this holds whatever the catalog parses.
    app.state["services"].chat["openrouter"] = fake
    return app, fake


def thinking_then_calling() -> list[ChatDelta]:
    return [
        ChatDelta(content="", reasoning="Look ", generation_id="gen-ws"),
        ChatDelta(content="", tool_calls=(ToolCallFragment(0, id="call_1", name="lookup"),)),
        ChatDelta(content="", reasoning="it up.", reasoning_details=tuple(DETAILS)),
        ChatDelta(content="", tool_calls=(ToolCallFragment(0, arguments='{"q": "pasta"}'),)),
        ChatDelta(
            content="",
            finish_reason="tool_calls",
            usage=TokenUsage(5, 9, 14, reasoning_tokens=4),
        ),
    ]


async def over_ws(app: RunningApp, open_ws: Any) -> Outcome:
    client: GraphQLWebSocket = await open_ws(app)
    return await client.run(STREAM, variables())


async def over_sse(app: RunningApp, _open_ws: Any) -> Outcome:
    return await sse_run(app, STREAM, variables())


TRANSPORTS = [pytest.param(over_ws, id="websocket"), pytest.param(over_sse, id="sse")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reasoning_and_tool_call_deltas_arrive_over_each_transport(
    stream_app: StreamApp, ws_client: Any, transport: Any
) -> None:
    app, fake = await app_with_fake(stream_app)
    fake.enqueue(*thinking_then_calling())
    outcome = await transport(app, ws_client)

    assert outcome.errors == [] and outcome.completed
    kinds = [e["__typename"] for e in outcome.events]
    assert kinds == [
        "ChatReasoningDelta",
        "ChatToolCallDelta",
        "ChatReasoningDelta",
        "ChatToolCallDelta",
        "ChatCompleted",
    ]
    reasoning = [e for e in outcome.events if e["__typename"] == "ChatReasoningDelta"]
    calls = [e for e in outcome.events if e["__typename"] == "ChatToolCallDelta"]
    assert [(e["index"], e["content"]) for e in reasoning] == [(0, "Look "), (1, "it up.")]
    assert calls == [
        {
            "__typename": "ChatToolCallDelta",
            "model": GPT_MINI,
            "index": 0,
            "toolCallIndex": 0,
            "id": "call_1",
            "name": "lookup",
            "argumentsDelta": "",
        },
        {
            "__typename": "ChatToolCallDelta",
            "model": GPT_MINI,
            "index": 1,
            "toolCallIndex": 0,
            "id": None,
            "name": None,
            "argumentsDelta": '{"q": "pasta"}',
        },
    ]
    completed = outcome.events[-1]
    assert completed["finishReason"] == "tool_calls"
    assert completed["reasoning"] == "Look it up."
    assert completed["reasoningDetails"] == DETAILS
    assert completed["generationId"] == "gen-ws"
    assert completed["toolCalls"] == [
        {"id": "call_1", "name": "lookup", "arguments": '{"q": "pasta"}'}
    ]
    assert completed["usage"] == {"reasoningTokens": 4}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failure_after_reasoning_and_a_tool_call_keeps_both(
    stream_app: StreamApp, ws_client: Any, transport: Any
) -> None:
    app, fake = await app_with_fake(stream_app)
    fake.enqueue(
        *thinking_then_calling()[:2],
        ChatDelta(content="", tool_calls=(ToolCallFragment(0, arguments='{"q": "pa'),)),
        ProviderUnavailable("connection reset", provider="openrouter"),
    )
    outcome = await transport(app, ws_client)

    failed = outcome.events[-1]
    assert failed["__typename"] == "ChatFailed"
    assert failed["partialReasoning"] == "Look "
    assert failed["partialToolCalls"] == [
        {"id": "call_1", "name": "lookup", "arguments": '{"q": "pa'}
    ]
    assert len(fake.requests) == 1
