"""Failures with reasoning and tools in play, end to end: OpenRouter's in-band error after
some reasoning and a tool-call fragment keeps both in ChatFailed (and in history); a
fallback answers, with the same options, when the first model fails before any output."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    BACKUP,
    BACKUP_UPSTREAM,
    THINKER,
    THINKER_UPSTREAM,
    Gateway,
    chunk,
    data_of,
    sse,
    usage_chunk,
)
from tests.streaming.conftest import GraphQLWebSocket, saved_answer
from tests.support.fake_upstream import FakeUpstream, Stream, http_error

STREAM = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted { model content reasoning toolCalls { id name arguments } }
    ... on ChatFailed {
      model code retryable partialContent partialReasoning
      partialToolCalls { id name arguments }
    }
  }
}
"""
HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes { role content status errorCode reasoning toolCalls { id name arguments } }
  }
}
"""
SEARCH = {"name": "search", "parameters": {"type": "object"}}


def variables(**input: Any) -> dict[str, Any]:
    return {
        "input": {
            "model": THINKER,
            "messages": [{"role": "USER", "content": "Find pasta recipes"}],
            "options": {"tools": [SEARCH], "reasoning": {"maxTokens": 256}},
            **input,
        }
    }


def broken_off() -> Stream:
    """Thinking, the start of a tool call, then OpenRouter's in-band provider error."""
    return Stream(
        (
            chunk({"role": "assistant", "content": "", "reasoning": "I should search."}),
            chunk(
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_s1",
                            "type": "function",
                            "function": {"name": "search", "arguments": '{"q": "carbo'},
                        }
                    ],
                }
            ),
            sse(
                {
                    "id": "gen-chunk-1",
                    "object": "chat.completion.chunk",
                    "model": THINKER_UPSTREAM,
                    "error": {"code": 502, "message": "Provider disconnected"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                }
            ),
        )
    )


async def test_a_failure_mid_answer_keeps_the_reasoning_and_the_tool_call_so_far(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.script(THINKER_UPSTREAM, broken_off())
    app = await gateway()
    client = await GraphQLWebSocket.open(app)
    try:
        outcome = await client.run(STREAM, variables(sessionId="broken", fallbacks=[BACKUP]))
    finally:
        await client.close()

    assert outcome.completed
    failed = outcome.events[-1]
    assert failed == {
        "__typename": "ChatFailed",
        "model": THINKER,
        "code": "PROVIDER_UNAVAILABLE",
        "retryable": True,
        "partialContent": "",
        "partialReasoning": "I should search.",
        "partialToolCalls": [{"id": "call_s1", "name": "search", "arguments": '{"q": "carbo'}],
    }
    assert [e["__typename"] for e in outcome.events[:-1]] == [
        "ChatReasoningDelta",
        "ChatToolCallDelta",
    ]
    # Output was shown: neither a retry nor the fallback.
    assert len(fake.chats) == 1

    await saved_answer(app, "broken")
    nodes = data_of(await app.graphql(HISTORY, {"sessionId": "broken"}))["chatHistory"]["nodes"]
    assert nodes[-1] == {
        "role": "ASSISTANT",
        "content": "",
        "status": "PARTIAL",
        "errorCode": "PROVIDER_UNAVAILABLE",
        "reasoning": "I should search.",
        "toolCalls": [{"id": "call_s1", "name": "search", "arguments": '{"q": "carbo'}],
    }


async def test_a_fallback_answers_with_the_options_when_the_first_model_fails_first(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    unavailable = http_error(503, "No instances available")
    fake.script(THINKER_UPSTREAM, unavailable, unavailable)
    fake.script(
        BACKUP_UPSTREAM,
        Stream(
            (
                chunk({"role": "assistant", "reasoning": "Searching."}, model=BACKUP_UPSTREAM),
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_b1",
                                "type": "function",
                                "function": {"name": "search", "arguments": '{"q":"x"}'},
                            }
                        ]
                    },
                    model=BACKUP_UPSTREAM,
                ),
                chunk({}, finish_reason="tool_calls", model=BACKUP_UPSTREAM),
                usage_chunk({"prompt_tokens": 9, "completion_tokens": 4}, model=BACKUP_UPSTREAM),
            )
        ),
    )
    app = await gateway()

    body = await app.graphql(
        """mutation ($input: ChatInput!) { chat(input: $input) {
             model finishReason reasoning toolCalls { id name arguments } } }""",
        variables(fallbacks=[BACKUP]),
    )

    assert data_of(body)["chat"] == {
        "model": BACKUP,
        "finishReason": "tool_calls",
        "reasoning": "Searching.",
        "toolCalls": [{"id": "call_b1", "name": "search", "arguments": '{"q":"x"}'}],
    }
    assert [call.model for call in fake.chats] == [
        THINKER_UPSTREAM,
        THINKER_UPSTREAM,
        BACKUP_UPSTREAM,
    ]
    for call in fake.chats:
        assert call.body["tools"] == [
            {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
        ]
        assert call.body["reasoning"] == {"max_tokens": 256}
