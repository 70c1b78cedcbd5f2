"""The query caches (schema.query_cache) pay: a query text seen before is neither parsed
nor validated again, by us or by Strawberry.

Counted where graphql-core does the work, whoever calls it: every parse runs
`Parser.parse_document`, every validation builds a `ValidationContext`. Each test sends
a text of its own (a comment makes it new), since the caches are shared by the process.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from graphql.language.parser import Parser
from graphql.validation import ValidationContext

from schema.build import build_schema

QUERY = "query Model($id: ID!) { model(id: $id) { id } }"


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times graphql-core parsed and validated a document."""
    done: Counter[str] = Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            done[name] += 1
            return method(*args, **kwargs)

        return call

    monkeypatch.setattr(Parser, "parse_document", counted("parse", Parser.parse_document))
    monkeypatch.setattr(
        ValidationContext, "__init__", counted("validate", ValidationContext.__init__)
    )
    return done


def fresh(query: str) -> str:
    return f"# {uuid.uuid4().hex}\n{query}"


async def test_a_second_identical_query_is_not_parsed_or_validated_again(
    work: Counter[str],
) -> None:
    schema = build_schema()
    query = fresh("{ __typename }")

    first = await schema.execute(query)
    assert work == {"parse": 1, "validate": 1}
    assert first.errors is None

    again = await schema.execute(query)
    assert work == {"parse": 1, "validate": 1}
    assert again.errors is None
    assert again.data == first.data == {"__typename": "Query"}


async def test_other_variables_reuse_the_checked_document(work: Counter[str]) -> None:
    schema = build_schema()
    query = fresh(QUERY)
    # Valid, so it runs; its resolver fails without the app's services, which is enough.
    for id in ("a", "b"):
        result = await schema.execute(query, variable_values={"id": id})
        assert result.errors is not None
        assert [e.path for e in result.errors] == [["model"]]
    assert work == {"parse": 1, "validate": 1}


async def test_an_invalid_query_is_refused_again_without_validating_again(
    work: Counter[str],
) -> None:
    schema = build_schema()
    query = fresh("{ noSuchField }")
    first = await schema.execute(query)
    again = await schema.execute(query)
    assert work == {"parse": 1, "validate": 1}
    assert first.errors is not None and again.errors is not None
    assert [e.message for e in again.errors] == [e.message for e in first.errors]
