"""Stream events answered by their plan are the events GraphQL execution gives.

For each selection below and each kind of event, the result of the schema's executor
(schema.stream_events.EventExecutor) is compared with Strawberry's own executor's, as
the JSON a client receives: same keys, same order, same values, same errors.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import strawberry
from graphql import ExecutionResult, parse

from aipasta.settings import Settings
from schema.build import build_schema
from schema.strawberry_seams import CoreExecutionContext, core_schema
from schema.stream_events import EventExecutor
from schema.types.chat import (
    ChatCompleted,
    ChatDelta,
    ChatFailed,
    ChatReasoningDelta,
    ChatToolCallDelta,
    Cost,
    Usage,
)
from schema.types.enums import ErrorCode

SCHEMA = core_schema(build_schema(Settings.model_construct()))
MESSAGES = [{"role": "USER", "content": "hi"}]
VARIABLES = {"input": {"model": "m", "messages": MESSAGES}}
COMPARE_VARIABLES = {"input": {"models": ["m", "n"], "messages": MESSAGES}}

# As the gateway builds one (resolvers.chat.results): floats where the schema says Float.
COMPLETED = ChatCompleted(
    model="openrouter:a/b",
    provider="openrouter",
    finish_reason="stop",
    content="Hello there",
    usage=Usage(prompt_tokens=5, completion_tokens=50, total_tokens=55, estimated=False),
    cost=Cost(input_cost=0.0, output_cost=1.25e-05, total_cost=1.25e-05, known=True),
    latency_ms=812.3456,
    time_to_first_token_ms=20.01,
    message_id=strawberry.ID("65f0c0ffee"),
    reasoning=None,
    reasoning_details=None,
    tool_calls=[],
    generation_id="gen-2",
)

EVENTS: list[object] = [
    COMPLETED,
    ChatDelta(model="openrouter:a/b", content="Hel", index=0),
    ChatDelta(model="m", content='ünï "quoted" \\ \n\u2028', index=7),
    ChatDelta(model="m", content="", index=2**31 - 1),
    # Beyond GraphQL's Int: execution answers with an error, so must the plan's answer.
    ChatDelta(model="m", content="x", index=2**31),
    # Not what the type says: execution coerces or fails, and is what answers.
    ChatDelta(model="m", content=5, index=True),  # type: ignore[arg-type]
    ChatDelta(model="m", content=None, index=1),  # type: ignore[arg-type]
    ChatReasoningDelta(model="m", content="thinking", index=3),
    ChatToolCallDelta(
        model="m", index=0, tool_call_index=0, id="call_1", name="f", arguments_delta='{"a'
    ),
    ChatToolCallDelta(
        model="m", index=1, tool_call_index=0, id=None, name=None, arguments_delta="1}"
    ),
    ChatCompleted(
        model="m",
        provider="openrouter",
        finish_reason="stop",
        content="Hello",
        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3, estimated=False),
        cost=Cost(input_cost=0.1, output_cost=0.2, total_cost=0.30000000000000004, known=True),
        latency_ms=12,
        time_to_first_token_ms=3,
        message_id=None,
        reasoning=None,
        reasoning_details=None,
        tool_calls=[],
        generation_id=None,
    ),
    ChatCompleted(
        model="m",
        provider="openrouter",
        finish_reason=None,
        content="",
        usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0, estimated=True),
        # An int for a Float: execution serializes it as 1.0.
        cost=Cost(input_cost=1, output_cost=0.0, total_cost=1.5, known=False),
        latency_ms=12.5,
        time_to_first_token_ms=None,
        message_id=strawberry.ID("abc"),
        reasoning="thought",
        reasoning_details=None,
        tool_calls=[],
        generation_id="gen-1",
    ),
    ChatCompleted(
        model="m",
        provider="openrouter",
        finish_reason="length",
        content="x",
        # Null where the schema says non-null: execution answers with an error.
        usage=None,  # type: ignore[arg-type]
        cost=Cost(input_cost=float("nan"), output_cost=0.0, total_cost=0.0, known=True),
        latency_ms=1.0,
        time_to_first_token_ms=0.5,
        message_id=None,
        reasoning=None,
        reasoning_details=None,
        tool_calls=[],
        generation_id=None,
    ),
    ChatFailed(
        model="m",
        code=ErrorCode.PROVIDER_TIMEOUT,
        message="slow",
        retryable=True,
        partial_content="He",
        message_id=None,
        partial_reasoning="",
        partial_tool_calls=[],
    ),
]

ALL_FIELDS = """
    __typename
    ... on ChatDelta { model content index }
    ... on ChatReasoningDelta { model content index }
    ... on ChatToolCallDelta { model index toolCallIndex id name argumentsDelta }
    ... on ChatCompleted { model content usage { completionTokens } finishReason }
    ... on ChatFailed { model code message retryable partialContent }
"""

DOCUMENTS = {
    "the bench's": """subscription ($input: ChatInput!) {
      chatStream(input: $input) {
        __typename
        ... on ChatDelta { content }
        ... on ChatCompleted { usage { completionTokens } }
        ... on ChatFailed { code message }
      }
    }""",
    "every field": f"""subscription S($input: ChatInput!) {{
      chatStream(input: $input) {{ {ALL_FIELDS} }}
    }}""",
    "compare": f"""subscription ($input: CompareInput!) {{
      compareStream(input: $input) {{ {ALL_FIELDS} }}
    }}""",
    "aliases": """subscription ($input: ChatInput!) {
      s: chatStream(input: $input) {
        kind: __typename
        ... on ChatDelta { text: content i: index content model }
        ... on ChatToolCallDelta { args: argumentsDelta call: toolCallIndex id }
        t: __typename
      }
    }""",
    "fields in another order, repeated": """subscription ($input: ChatInput!) {
      chatStream(input: $input) {
        ... on ChatDelta { index }
        __typename
        ... on ChatDelta { content index model }
        ... on ChatReasoningDelta { index content }
      }
    }""",
    "named and nested fragments": """
    subscription ($input: ChatInput!) {
      chatStream(input: $input) { ...Event ...Delta ...Delta }
    }
    fragment Event on ChatStreamEvent {
      __typename
      ... on ChatReasoningDelta { ...Reasoning }
      ... { ... on ChatToolCallDelta { name } }
    }
    fragment Delta on ChatDelta { model ... on ChatDelta { content } }
    fragment Reasoning on ChatReasoningDelta { content index }
    """,
    "fragment on the union without type": """subscription ($input: ChatInput!) {
      chatStream(input: $input) { ... { __typename } ... on ChatStreamEvent { __typename } }
    }""",
    "only __typename": """subscription ($input: ChatInput!) {
      chatStream(input: $input) { __typename }
    }""",
    "directives": """subscription ($input: ChatInput!, $yes: Boolean = true, $no: Boolean = false) {
      chatStream(input: $input) {
        __typename
        ... on ChatDelta {
          content @include(if: $yes) index @skip(if: $yes) model @include(if: $no)
        }
        ... on ChatToolCallDelta @skip(if: $no) { name }
      }
    }""",
    "objects": """subscription ($input: ChatInput!) {
      chatStream(input: $input) {
        __typename
        ... on ChatCompleted {
          usage { completionTokens __typename }
          u: usage { total: totalTokens estimated }
          usage { promptTokens completionTokens }
          ...Spent
          latencyMs timeToFirstTokenMs messageId finishReason reasoning generationId
        }
      }
    }
    fragment Spent on ChatCompleted { cost { ... on Cost { totalCost } known inputCost } }
    """,
    "an enum and a list": """subscription ($input: ChatInput!) {
      chatStream(input: $input) {
        ... on ChatCompleted { toolCalls { id } content }
        ... on ChatFailed { code partialContent }
      }
    }""",
    "a nested field on a delta type's sibling": """subscription ($input: ChatInput!) {
      chatStream(input: $input) {
        ... on ChatDelta { content }
        ... on ChatCompleted { cost { totalCost known } usage { totalTokens } }
      }
    }""",
}


def _results(document: str, event: object) -> tuple[ExecutionResult, ExecutionResult]:
    parsed = parse(document)
    variables = COMPARE_VARIABLES if "CompareInput" in document else VARIABLES
    ours = EventExecutor.build(SCHEMA, parsed, raw_variable_values=variables)
    theirs = CoreExecutionContext.build(SCHEMA, parsed, raw_variable_values=variables)
    assert isinstance(ours, EventExecutor), ours
    assert isinstance(theirs, CoreExecutionContext), theirs
    answers = (
        ours.build_per_event_executor(event).execute_operation(False),
        theirs.build_per_event_executor(event).execute_operation(False),
    )
    assert all(isinstance(answer, ExecutionResult) for answer in answers)
    return cast(tuple[ExecutionResult, ExecutionResult], answers)


def _wire(result: ExecutionResult) -> str:
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    return json.dumps(payload)


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_each_event_is_what_execution_gives(document: str, event: object) -> None:
    ours, theirs = _results(document, event)
    assert _wire(ours) == _wire(theirs)
    assert type(ours) is type(theirs)


def test_the_common_selections_skip_execution_for_deltas() -> None:
    """Not a timing: the plan answers the delta events (else the test above proves
    nothing about it), and leaves terminal events and directives to execution."""
    for name in ("the bench's", "every field", "compare", "aliases", "named and nested fragments"):
        parsed = parse(DOCUMENTS[name])
        variables = COMPARE_VARIABLES if name == "compare" else VARIABLES
        executor = EventExecutor.build(SCHEMA, parsed, raw_variable_values=variables)
        assert isinstance(executor, EventExecutor)
        assert executor.build_per_event_executor(EVENTS[1])._planned is not None, name
        if name in {"the bench's", "every field", "compare"}:  # ChatFailed's enum `code`
            assert executor.build_per_event_executor(EVENTS[-1])._planned is None, name
        assert executor.build_per_event_executor(EVENTS[5])._planned is None, name
    for name in ("the bench's", "objects"):
        parsed = parse(DOCUMENTS[name])
        executor = EventExecutor.build(SCHEMA, parsed, raw_variable_values=VARIABLES)
        assert isinstance(executor, EventExecutor)
        assert executor.build_per_event_executor(COMPLETED)._planned is not None, name
    parsed = parse(DOCUMENTS["directives"])
    executor = EventExecutor.build(SCHEMA, parsed, raw_variable_values=VARIABLES)
    assert isinstance(executor, EventExecutor)
    assert executor.build_per_event_executor(EVENTS[1])._planned is None
