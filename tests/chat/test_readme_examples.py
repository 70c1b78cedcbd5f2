"""The README's GraphQL examples are valid operations of the schema as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from tests.chat.conftest import SCHEMA

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("operation", BLOCKS, ids=[f"README {i}" for i in range(len(BLOCKS))])
def test_a_readme_example_validates_against_the_schema(operation: str) -> None:
    assert validate(SCHEMA._schema, parse(operation)) == []


def test_the_tool_loop_and_reasoning_stream_examples_are_there() -> None:
    text = "\n".join(BLOCKS)
    assert "ChatReasoningDelta" in text
    assert "toolCallId" in text and "toolCalls" in text
