"""The query caches (schema.query_cache) pay: a query text seen before is neither parsed
nor validated again, by us or by Strawberry.

Counted where graphql-core does the work, whoever calls it (the `work` fixture). Each
test sends a text of its own (a comment makes it new): the caches are the process's.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from graphql import parse

from aipasta.settings import Settings
from schema.build import build_schema
from schema.query_cache import DocumentCache

QUERY = "query Model($id: ID!) { model(id: $id) { id } }"


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


def limited_schema(**limits: int) -> Any:
    return build_schema(Settings.model_construct(**limits))  # type: ignore[arg-type]


async def test_a_cached_over_deep_document_is_refused_every_time(work: Counter[str]) -> None:
    schema = limited_schema(max_depth=0)
    query = fresh("{ health { status } }")
    answers = [await schema.execute(query) for _ in range(3)]
    assert work == {"parse": 1, "validate": 1}
    for answer in answers:
        assert answer.data is None
        assert [e.message for e in answer.errors or []] == [
            "'anonymous' exceeds maximum operation depth of 0"
        ]


async def test_a_cached_over_cost_document_is_refused_every_time(work: Counter[str]) -> None:
    schema = limited_schema(max_query_cost=2)
    query = fresh("{ health { status version } }")
    answers = [await schema.execute(query) for _ in range(3)]
    assert work == {"parse": 1, "validate": 1}
    for answer in answers:
        assert answer.data is None
        (error,) = answer.errors or []
        assert error.message.startswith("Query cost 3 exceeds the limit of 2"), error.message


async def test_a_cost_that_reads_a_variable_is_estimated_for_each_request() -> None:
    schema = limited_schema(max_query_cost=20)
    query = fresh("query ($n: Int) { models(first: $n) { nodes { id } } }")
    # A small page passes the cost check (its resolver then fails without the app's
    # services); the same document asking for a large page must still be refused.
    small = await schema.execute(query, variable_values={"n": 2})
    assert small.errors is not None and [e.path for e in small.errors] == [["models"]]
    large = await schema.execute(query, variable_values={"n": 500})
    assert large.data is None
    (error,) = large.errors or []
    assert error.message.startswith("Query cost "), error.message
    assert "exceeds the limit of 20" in error.message


def test_the_document_cache_is_bounded_and_keyed_by_the_document_object() -> None:
    cache: DocumentCache[str] = DocumentCache(2)
    first, second, third = (parse("{ __typename }") for _ in range(3))
    cache.put(first, "k", "first")
    cache.put(second, "k", "second")
    assert cache.get(first, "k") == "first"  # now the most recently used
    cache.put(third, "k", "third")
    assert len(cache) == 2
    assert cache.get(second, "k") is None  # the least recently used went
    assert (cache.get(first, "k"), cache.get(third, "k")) == ("first", "third")
    # An equal document parsed again is another document: no answer of the first's.
    assert cache.get(parse("{ __typename }"), "k") is None
    assert cache.get(first, "other key") is None
