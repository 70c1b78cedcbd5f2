"""A run's pieces and result from a stream that mixes text with everything else.

Text-only deltas take a shorter way through `ChatRun`; the pieces, their order and
what the result keeps (reasoning details, tool calls, usage, generation id, time to
first token) must be the same as for any other delta.
"""

from __future__ import annotations

from providers.chat import ChatDelta, TokenUsage, ToolCall, ToolCallFragment
from providers.errors import ProviderUnavailable
from providers.fake import FakeProvider
from providers.model import ModelInfo
from resolvers.chat.inputs import CheckedMessage, CheckedOptions, Conversation
from resolvers.chat.run import ChatRun, Piece, PieceKind, RetryRules
from schema.types.enums import ChatRole, MessageStatus

MODEL = ModelInfo(provider="fake", upstream_id="org/thinker", name="Thinker")
CONVERSATION = Conversation(
    [CheckedMessage(ChatRole.USER, "Weather?", [])], CheckedOptions(), session_id=None
)
DETAIL = {"type": "reasoning.text", "text": "hm", "index": 0}


class Ticks:
    """A monotonic clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def pieces_of(run: ChatRun) -> list[Piece]:
    return [piece async for piece in run.deltas()]


async def test_text_between_reasoning_and_tool_calls_keeps_its_order_and_extras() -> None:
    provider = FakeProvider("fake")
    usage = TokenUsage(prompt_tokens=3, completion_tokens=7, total_tokens=10)
    provider.enqueue(
        ChatDelta(content="", generation_id="gen-1"),
        ChatDelta(content="Let me ", generation_id="gen-1"),
        ChatDelta(content="", reasoning="hm", reasoning_details=(DETAIL,)),
        ChatDelta(content="look."),
        ChatDelta(content="", tool_calls=(ToolCallFragment(0, id="c1", name="f"),)),
        ChatDelta(content="", tool_calls=(ToolCallFragment(0, arguments="{}"),)),
        ChatDelta(content="", finish_reason="tool_calls", usage=usage),
        finish=None,
    )
    run = ChatRun(CONVERSATION, [MODEL], {"fake": provider}, rules=RetryRules(), monotonic=Ticks())

    pieces = await pieces_of(run)
    result = run.result()

    assert pieces == [
        Piece(PieceKind.CONTENT, "Let me "),
        Piece(PieceKind.REASONING, "hm"),
        Piece(PieceKind.CONTENT, "look."),
        Piece(PieceKind.TOOL_CALL, "", tool_call=0, id="c1", name="f"),
        Piece(PieceKind.TOOL_CALL, "{}", tool_call=0),
    ]
    assert result.status is MessageStatus.COMPLETE
    assert result.content == "Let me look."
    assert result.reasoning == "hm"
    assert result.reasoning_details == (DETAIL,)
    assert result.tool_calls == (ToolCall(id="c1", name="f", arguments="{}"),)
    assert result.finish_reason == "tool_calls"
    assert result.usage == usage
    assert result.generation_id == "gen-1"
    # Started at tick 1; the first piece (not the empty first delta) at tick 2.
    assert result.time_to_first_token_ms == 1000


async def test_text_only_answer_then_a_failure_keeps_what_was_shown() -> None:
    provider = FakeProvider("fake")
    provider.enqueue("Hel", "lo", ProviderUnavailable("gone", provider="fake"))
    run = ChatRun(CONVERSATION, [MODEL], {"fake": provider}, rules=RetryRules())

    pieces = await pieces_of(run)
    result = run.result()

    assert [piece.text for piece in pieces] == ["Hel", "lo"]
    assert result.status is MessageStatus.PARTIAL
    assert result.content == "Hello"
    assert result.usage.estimated
    assert provider.pending == 0  # shown output: no retry
