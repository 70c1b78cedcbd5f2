"""What a thinking or tool-using model gave besides its text, saved with its answer and
read back through `chatHistory`: reasoning (unless the request excluded it), reasoning
details, tool calls, generation id, and the tool results of a tool loop.

The runs' results are built directly (the provider clients fill them elsewhere); the
answers are saved by the real ExchangeWriter and read through the real schema.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from aipasta.settings import Settings
from documents.database import Database
from documents.errors import DatabaseUnavailable
from providers.chat import ReasoningRequest, TokenUsage, ToolCall
from providers.model import ModelInfo
from providers.pricing import Cost
from resolvers.chat.finish import (
    MAX_STORED_REASONING_DETAILS_BYTES,
    MAX_STORED_TOOL_CALLS,
    ExchangeWriter,
)
from resolvers.chat.inputs import CheckedMessage, CheckedOptions, Conversation
from resolvers.chat.run import RunResult
from resolvers.context import Services
from resolvers.history.backlog import HistoryBacklog
from resolvers.history.store import HistoryStore
from schema.types.enums import ChatRole, MessageStatus
from tests.history.conftest import SESSIONS, HistoryClient, make_services

MODEL = ModelInfo(provider="openrouter", upstream_id="openai/o4-mini", name="o4-mini")

HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes {
      content isUser role model status reasoning reasoningDetails
      toolCalls { id name arguments } toolCallId generationId
    }
  }
}
"""

QUESTION = CheckedMessage(ChatRole.USER, "Weather in Paris and Rome?", [])
CALLS = (
    ToolCall(id="call_a", name="weather", arguments='{"city":"Paris"}'),
    # Passed through as the model wrote it: spacing, order and escapes kept.
    ToolCall(id="call_b", name="weather", arguments='{ "city" : "Rome", "unit":"\\u00b0C"}'),
)
# Opaque items the next turn must pass back unchanged, including what BSON could not
# store as is: a `$` key, an integer past 64 bits, nesting.
DETAILS: tuple[dict[str, Any], ...] = (
    {"type": "reasoning.text", "text": "Two cities: ask for both.", "index": 0, "signature": None},
    {
        "type": "reasoning.encrypted",
        "id": "rs_1",
        "format": "openai-responses-v1",
        "index": 1,
        "data": "gAAAAB",
        "$meta": {"size": 2**70, "parts": [1, 2.5, "é"]},
    },
)


def run_result(
    content: str,
    *,
    reasoning: str = "",
    reasoning_details: tuple[dict[str, Any], ...] = (),
    tool_calls: tuple[ToolCall, ...] = (),
    generation_id: str | None = None,
    usage: TokenUsage | None = None,
) -> RunResult:
    return RunResult(
        id="chat-test",
        model=MODEL,
        status=MessageStatus.COMPLETE,
        cancelled=False,
        content=content,
        finish_reason="tool_calls" if tool_calls else "stop",
        usage=usage or TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
        cost=Cost(Decimal("0.001"), Decimal("0.002"), Decimal("0.003"), known=True),
        latency_ms=120.0,
        time_to_first_token_ms=40.0,
        error=None,
        reasoning=reasoning,
        reasoning_details=reasoning_details,
        tool_calls=tool_calls,
        generation_id=generation_id,
    )


def writer(
    services: Services,
    *messages: CheckedMessage,
    options: CheckedOptions | None = None,
    session_id: str | None = "s1",
) -> ExchangeWriter:
    return ExchangeWriter(
        services,
        user_id="alice",
        request_id="req-1",
        conversation=Conversation(list(messages), options or CheckedOptions(), session_id),
        model_count=1,
    )


def answer_turn() -> CheckedMessage:
    """The first answer as the client sends it back in the next turn."""
    return CheckedMessage(ChatRole.ASSISTANT, "", [], tool_calls=CALLS, reasoning_details=DETAILS)


def tool_turn(call_id: str, content: str) -> CheckedMessage:
    return CheckedMessage(ChatRole.TOOL, content, [], tool_call_id=call_id)


def node(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "content": "",
        "isUser": False,
        "role": "ASSISTANT",
        "model": None,
        "status": "COMPLETE",
        "reasoning": None,
        "reasoningDetails": None,
        "toolCalls": [],
        "toolCallId": None,
        "generationId": None,
    }
    return base | fields


def as_api(calls: tuple[ToolCall, ...]) -> list[dict[str, str]]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]


@pytest.fixture
def services(history_settings: Settings, database: Database) -> Services:
    services = make_services(history_settings, database)
    services.history_backlog = HistoryBacklog(database)
    return services


async def test_a_tool_loop_is_saved_whole_and_read_back_through_chat_history(
    services: Services,
) -> None:
    client = HistoryClient(services)
    thinking = CheckedOptions(reasoning=ReasoningRequest(effort="high"))
    first = writer(services, QUESTION, options=thinking)
    saved = await first.finish(
        run_result(
            "",
            reasoning="Two cities: ask for both.",
            reasoning_details=DETAILS,
            tool_calls=CALLS,
            generation_id="gen-1",
        )
    )
    assert saved is not None
    # The next turn: the client answers both calls; the model answers the question.
    second = writer(
        services,
        QUESTION,
        answer_turn(),
        tool_turn("call_a", '{"temp": 18}'),
        tool_turn("call_b", '{"temp": 24}'),
        options=thinking,
    )
    await second.finish(
        run_result("Paris 18°C, Rome 24°C.", reasoning="Compare.", generation_id="gen-2")
    )

    nodes = (await client.data(HISTORY, {"sessionId": "s1"}))["chatHistory"]["nodes"]
    assert nodes == [
        node(content=QUESTION.content, isUser=True, role="USER"),
        node(
            model=MODEL.id,
            reasoning="Two cities: ask for both.",
            reasoningDetails=list(DETAILS),
            toolCalls=as_api(CALLS),
            generationId="gen-1",
        ),
        node(content='{"temp": 18}', role="TOOL", toolCallId="call_a"),
        node(content='{"temp": 24}', role="TOOL", toolCallId="call_b"),
        node(
            content="Paris 18°C, Rome 24°C.",
            model=MODEL.id,
            reasoning="Compare.",
            generationId="gen-2",
        ),
    ]
    # Exactly as they came: the big integer and the `$` key too.
    assert nodes[1]["reasoningDetails"][1]["$meta"]["size"] == 2**70
    # Tool results neither name the session nor show as its last message.
    sessions = (await client.data(SESSIONS))["chatSessions"]["nodes"]
    assert [(s["title"], s["messageCount"], s["lastMessage"]) for s in sessions] == [
        (QUESTION.content, 5, "Paris 18°C, Rome 24°C.")
    ]


async def test_excluded_reasoning_is_not_saved_but_the_rest_of_the_answer_is(
    services: Services,
) -> None:
    excluded = CheckedOptions(reasoning=ReasoningRequest(effort="low", exclude=True))
    await writer(services, QUESTION, options=excluded).finish(
        run_result(
            "",
            reasoning="what the user asked not to keep",
            reasoning_details=DETAILS[1:],
            tool_calls=CALLS[:1],
            generation_id="gen-x",
        )
    )
    # The tool result comes next; its answer's reasoning is not kept either.
    await writer(
        services, QUESTION, answer_turn(), tool_turn("call_a", "18"), options=excluded
    ).finish(run_result("18°C", reasoning="still not kept"))
    nodes = (await HistoryClient(services).data(HISTORY, {"sessionId": "s1"}))["chatHistory"][
        "nodes"
    ]
    assert [(n["role"], n["content"], n["reasoning"]) for n in nodes] == [
        ("USER", QUESTION.content, None),
        ("ASSISTANT", "", None),
        ("TOOL", "18", None),
        ("ASSISTANT", "18°C", None),
    ]
    assert nodes[1]["reasoningDetails"] == list(DETAILS[1:])
    assert nodes[1]["toolCalls"] == as_api(CALLS[:1])
    assert nodes[1]["generationId"] == "gen-x"
    assert nodes[2]["toolCallId"] == "call_a"


async def test_while_the_database_is_down_the_answer_waits_with_everything_it_carries(
    services: Services, database: Database, unreachable_database: Database
) -> None:
    services.database = unreachable_database
    exchange = writer(services, QUESTION, answer_turn(), tool_turn("call_a", '{"temp":18}'))
    result = run_result(
        "",
        reasoning="One more call.",
        reasoning_details=DETAILS,
        tool_calls=CALLS[1:],
        generation_id="gen-3",
    )
    # The client is told it was not saved now; the tool result and answer wait, in
    # one write.
    assert await exchange.finish(result) is None
    assert services.history_backlog.pending == 1

    services.database = database  # MongoDB is back
    assert await services.history_backlog.flush() == 1
    nodes = (await HistoryClient(services).data(HISTORY, {"sessionId": "s1"}))["chatHistory"][
        "nodes"
    ]
    assert nodes == [
        node(content='{"temp":18}', role="TOOL", toolCallId="call_a"),
        node(
            model=MODEL.id,
            reasoning="One more call.",
            reasoningDetails=list(DETAILS),
            toolCalls=as_api(CALLS[1:]),
            generationId="gen-3",
        ),
    ]


async def test_what_an_answer_carries_is_bounded_and_garbage_is_left_out(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    huge = ({"type": "reasoning.text", "text": "x" * MAX_STORED_REASONING_DETAILS_BYTES},)
    calls = tuple(
        ToolCall(id=f"call_{i}", name="f", arguments="{}") for i in range(MAX_STORED_TOOL_CALLS + 5)
    )
    await writer(services, QUESTION).finish(
        run_result("big", reasoning_details=huge, tool_calls=calls, generation_id="g" * 500)
    )
    # Not JSON: NaN is refused rather than stored as something the API could not send.
    await writer(services, QUESTION).finish(
        run_result("nan", reasoning="kept", reasoning_details=({"score": math.nan},))
    )
    nodes = (await HistoryClient(services).data(HISTORY, {"sessionId": "s1"}))["chatHistory"][
        "nodes"
    ]
    big, nan = nodes[1], nodes[3]
    assert big["content"] == "big"
    assert big["reasoningDetails"] is None
    assert [c["id"] for c in big["toolCalls"]] == [c.id for c in calls[:MAX_STORED_TOOL_CALLS]]
    assert big["generationId"] is None
    assert (nan["content"], nan["reasoning"], nan["reasoningDetails"]) == ("nan", "kept", None)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "reasoning details too large" in logged
    assert "reasoning details are not JSON" in logged
    assert "5 of 133 tool calls too large to save" in logged


async def test_messages_saved_before_these_fields_existed_still_read(
    services: Services, database: Database
) -> None:
    client = HistoryClient(services)
    # saveMessage keeps working, and its messages carry none of the new fields.
    await client.save("s1", "old question")
    await client.save("s1", "old answer", isUser=False, model="m")
    # As an older version stored them: without the new fields at all.
    await database.db["chat_messages"].update_many(
        {},
        {
            "$unset": {
                "reasoning": "",
                "reasoningDetails": "",
                "toolCalls": "",
                "generationId": "",
                "toolCallId": "",
            }
        },
    )
    raw = await database.db["chat_messages"].find_one({"content": "old answer"})
    assert raw is not None and "toolCalls" not in raw
    nodes = (await client.data(HISTORY, {"sessionId": "s1"}))["chatHistory"]["nodes"]
    assert nodes == [
        node(content="old question", isUser=True, role="USER"),
        node(content="old answer", model="m"),
    ]


async def test_an_exchange_cut_by_the_database_midway_is_finished_later_without_repeats(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB goes away after the first of two tool results was saved: the rest of the
    exchange waits, and once it is back the second result and the answer follow."""
    save = HistoryStore.save
    calls = 0

    async def lost_on_the_second_save(self: HistoryStore, message: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise DatabaseUnavailable()
        return await save(self, message, **kwargs)

    monkeypatch.setattr(HistoryStore, "save", lost_on_the_second_save)
    exchange = writer(
        services, QUESTION, answer_turn(), tool_turn("call_a", "18"), tool_turn("call_b", "24")
    )
    assert await exchange.finish(run_result("Paris 18, Rome 24.", generation_id="g")) is None
    assert services.history_backlog.pending == 1
    assert await services.history_backlog.flush() == 1
    nodes = (await HistoryClient(services).data(HISTORY, {"sessionId": "s1"}))["chatHistory"][
        "nodes"
    ]
    assert [(n["role"], n["content"], n["toolCallId"]) for n in nodes] == [
        ("TOOL", "18", "call_a"),
        ("TOOL", "24", "call_b"),
        ("ASSISTANT", "Paris 18, Rome 24.", None),
    ]
