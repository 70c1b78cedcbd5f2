"""A frontend leaving a thinking, tool-calling stream half way, hidden reasoning, and
two thinking models compared side by side, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.conftest import (
    BACKUP,
    BACKUP_UPSTREAM,
    THINKER,
    THINKER_UPSTREAM,
    Gateway,
    chunk,
    data_of,
    usage_chunk,
)
from tests.streaming.conftest import GraphQLWebSocket, Outcome, saved_answer, usage_records
from tests.support.fake_upstream import FakeUpstream, Stream, Wait

EVENTS = """
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted { model content reasoning reasoningDetails }
    ... on ChatFailed { model code }
"""
STREAM = f"subscription ($input: ChatInput!) {{ chatStream(input: $input) {{ {EVENTS} }} }}"
COMPARE = f"subscription ($input: CompareInput!) {{ compareStream(input: $input) {{ {EVENTS} }} }}"
HISTORY = """
query ($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes { role content status reasoning reasoningDetails toolCalls { id name arguments } }
  }
}
"""
TOOL = {"name": "lookup", "parameters": {"type": "object"}}
QUESTION = [{"role": "USER", "content": "Look it up"}]


async def test_leaving_mid_tool_call_saves_what_was_thought_and_called_so_far(
    gateway: Gateway, fake: FakeUpstream, store: Any
) -> None:
    never = asyncio.Event()
    fake.script(
        THINKER_UPSTREAM,
        Stream(
            (
                chunk({"role": "assistant", "reasoning": "Needs a lookup."}),
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_l",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q":'},
                            }
                        ]
                    }
                ),
                Wait(never),
            )
        ),
    )
    app = await gateway()
    client = await GraphQLWebSocket.open(app)
    variables = {
        "input": {
            "model": THINKER,
            "messages": QUESTION,
            "sessionId": "left",
            "options": {"tools": [TOOL], "reasoning": {"effort": "LOW"}},
        }
    }
    outcome = Outcome()
    try:
        op_id = await client.subscribe(STREAM, variables)
        while len(outcome.events) < 2:
            await client.event(op_id, outcome)
        await client.complete(op_id)
        await (await fake.chat(0)).wait_closed(within=5)
    finally:
        await client.close()

    assert [e["__typename"] for e in outcome.events] == ["ChatReasoningDelta", "ChatToolCallDelta"]
    await saved_answer(app, "left")
    nodes = data_of(await app.graphql(HISTORY, {"sessionId": "left"}))["chatHistory"]["nodes"]
    assert nodes[-1] == {
        "role": "ASSISTANT",
        "content": "",
        "status": "PARTIAL",
        "reasoning": "Needs a lookup.",
        "reasoningDetails": None,
        "toolCalls": [{"id": "call_l", "name": "lookup", "arguments": '{"q":'}],
    }
    (record,) = await usage_records(store)
    assert record["status"] == "cancelled"
    assert record["estimated"] is True
    # Estimated: about one token per 4 characters of the reasoning.
    assert record["reasoningTokens"] == 4


async def test_excluded_reasoning_is_asked_for_hidden_and_not_saved(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    # An upstream that returns some anyway (details are still needed to continue).
    details = [{"type": "reasoning.encrypted", "data": "b3BhcXVl", "index": 0}]
    fake.script(
        THINKER_UPSTREAM,
        Stream(
            (
                chunk({"role": "assistant", "reasoning": "secret", "reasoning_details": details}),
                chunk({"content": "42"}),
                chunk({}, finish_reason="stop"),
                usage_chunk({"prompt_tokens": 5, "completion_tokens": 3}),
            )
        ),
    )
    app = await gateway()
    variables = {
        "input": {
            "model": THINKER,
            "messages": QUESTION,
            "sessionId": "hidden",
            "options": {"reasoning": {"maxTokens": 500, "exclude": True}},
        }
    }
    body = await app.graphql(
        "mutation ($input: ChatInput!) { chat(input: $input) { message { content } } }", variables
    )
    assert data_of(body)["chat"]["message"]["content"] == "42"
    (call,) = fake.chats
    assert call.body["reasoning"] == {"max_tokens": 500, "exclude": True}

    nodes = data_of(await app.graphql(HISTORY, {"sessionId": "hidden"}))["chatHistory"]["nodes"]
    answer = nodes[-1]
    assert answer["reasoning"] is None
    assert answer["reasoningDetails"] == details


async def test_two_thinking_models_compared_number_their_own_events(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    for upstream_id, words in ((THINKER_UPSTREAM, "Hm"), (BACKUP_UPSTREAM, "Ah")):
        fake.script(
            upstream_id,
            Stream(
                (
                    chunk({"role": "assistant", "reasoning": words}, model=upstream_id),
                    chunk({"content": f"{words}!"}, model=upstream_id),
                    chunk({}, finish_reason="stop", model=upstream_id),
                    usage_chunk({"prompt_tokens": 5, "completion_tokens": 3}, model=upstream_id),
                )
            ),
        )
    app = await gateway()
    variables = {
        "input": {
            "models": [THINKER, BACKUP],
            "messages": QUESTION,
            "options": {"reasoning": {"effort": "MEDIUM"}},
        }
    }
    client = await GraphQLWebSocket.open(app)
    try:
        outcome = await client.run(COMPARE, variables)
    finally:
        await client.close()

    assert outcome.errors == [] and outcome.completed
    for model, words in ((THINKER, "Hm"), (BACKUP, "Ah")):
        events = [e for e in outcome.events if e["model"] == model]
        assert [(e["__typename"], e.get("index")) for e in events] == [
            ("ChatReasoningDelta", 0),
            ("ChatDelta", 0),
            ("ChatCompleted", None),
        ]
        assert events[-1]["reasoning"] == words
        assert events[-1]["content"] == f"{words}!"
    assert sorted(call.body["reasoning"]["effort"] for call in fake.chats) == ["medium"] * 2
