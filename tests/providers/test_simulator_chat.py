"""The real chat client, in OpenRouter's dialect, against the built-in simulator: a
reasoning chat and a tool-call chat come through whole, and the gateway's own price for
them is what the simulator billed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest_asyncio

from providers.chat import ChatDelta, ChatRequest, ReasoningRequest, ToolCallAssembler, ToolSpec
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.openrouter import parse_openrouter_models
from providers.payload import Dialect
from providers.pricing import cost_of
from providers.simulator import NAME, SimulatorConfig, models_payload, start_simulator
from tests.support.clocks import Sleeps

CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant for a pasta kitchen."},
    {"role": "user", "content": "How long should I boil fresh tagliatelle?"},
]
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    },
)
PRICES = {m.upstream_id: m.pricing for m in parse_openrouter_models(models_payload())}


@dataclass
class Simulated:
    client: OpenAICompatibleClient

    async def chat(self, request: ChatRequest) -> list[ChatDelta]:
        return [delta async for delta in self.client.stream_chat(request)]


@pytest_asyncio.fixture
async def simulated() -> AsyncIterator[Simulated]:
    running = await start_simulator(SimulatorConfig(token_delay=0.0, tokens=12), sleep=Sleeps())
    try:
        async with aiohttp.ClientSession() as session:
            yield Simulated(
                OpenAICompatibleClient(
                    session,
                    name=NAME,
                    base_url=running.base_url,
                    api_key=None,
                    timeouts=ChatTimeouts(),
                    dialect=Dialect.OPENROUTER,
                )
            )
    finally:
        await running.close()


async def test_a_reasoning_chat_streams_reasoning_then_the_answer(simulated: Simulated) -> None:
    request = ChatRequest(
        model="sim/reasoner", messages=CONVERSATION, reasoning=ReasoningRequest(effort="high")
    )

    deltas = await simulated.chat(request)

    thinking = [d for d in deltas if d.reasoning]
    assert thinking, "no reasoning streamed"
    first_answer = next(i for i, d in enumerate(deltas) if d.content)
    assert all(deltas.index(d) < first_answer for d in thinking)
    reasoning = "".join(d.reasoning for d in thinking)
    assert reasoning.startswith("Thinking")
    # Each reasoning piece comes with its structured detail, kept as sent.
    details = [detail for d in deltas for detail in d.reasoning_details]
    assert "".join(detail["text"] for detail in details) == reasoning
    assert {detail["type"] for detail in details} == {"reasoning.text"}

    usage = deltas[-1].usage
    assert usage is not None
    assert usage.reasoning_tokens == len(thinking)
    assert usage.cached_prompt_tokens > 0  # the system turn was seen before
    # The gateway's own price for the same counts is what the simulator billed.
    cost = cost_of(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        pricing=PRICES["sim/reasoner"],
        cached_prompt_tokens=usage.cached_prompt_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )
    assert cost.total_cost == usage.cost
    generation = {d.generation_id for d in deltas}
    assert len(generation) == 1 and generation.pop().startswith("gen-")  # type: ignore[union-attr]


async def test_excluded_reasoning_is_thought_but_not_sent(simulated: Simulated) -> None:
    request = ChatRequest(
        model="sim/reasoner",
        messages=CONVERSATION,
        reasoning=ReasoningRequest(max_tokens=256, exclude=True),
    )

    deltas = await simulated.chat(request)

    assert not any(d.reasoning or d.reasoning_details for d in deltas)
    assert "".join(d.content for d in deltas)
    usage = deltas[-1].usage
    assert usage is not None and usage.reasoning_tokens > 0


async def test_a_tool_call_chat_assembles_the_call(simulated: Simulated) -> None:
    request = ChatRequest(
        model="sim/chat",
        messages=CONVERSATION,
        tools=(WEATHER,),
        tool_choice="get_weather",
        parallel_tool_calls=False,
    )

    deltas = await simulated.chat(request)

    assembler = ToolCallAssembler()
    for delta in deltas:
        assembler.add(delta.tool_calls)
    (call,) = assembler.calls()
    assert call.name == "get_weather"
    assert call.id.startswith("call_")
    arguments = json.loads(call.arguments)
    assert set(arguments) == {"city", "days"}
    assert isinstance(arguments["days"], int)
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]
    # Several pieces, not one: the call really was assembled.
    assert sum(1 for d in deltas if d.tool_calls) > 1
    usage = deltas[-1].usage
    assert usage is not None and usage.cost is not None


async def test_the_tool_loops_second_turn_is_answered(simulated: Simulated) -> None:
    first = await simulated.chat(
        ChatRequest(
            model="sim/reasoner",
            messages=CONVERSATION,
            tools=(WEATHER,),
            reasoning=ReasoningRequest(effort="low"),
        )
    )
    assembler = ToolCallAssembler()
    for delta in first:
        assembler.add(delta.tool_calls)
    (call,) = assembler.calls()
    details = [dict(detail) for d in first for detail in d.reasoning_details]
    assert details
    turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ],
        "reasoning_details": details,
    }
    result = {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'}

    second = await simulated.chat(
        ChatRequest(
            model="sim/reasoner",
            messages=[*CONVERSATION, turn, result],
            tools=(WEATHER,),
            tool_choice="none",
            reasoning=ReasoningRequest(effort="low"),
        )
    )

    assert "".join(d.content for d in second)
    assert not any(d.tool_calls for d in second)
    assert [d.finish_reason for d in second if d.finish_reason] == ["stop"]
