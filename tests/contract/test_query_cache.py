"""The query caches (schema.query_cache) pay: a query text seen before is neither parsed
nor validated again, by us or by Strawberry.

Counted where graphql-core does the work, whoever calls it (the `work` fixture). Each
test sends a text of its own (a comment makes it new): the caches are the process's.
"""

from __future__ import annotations

import uuid
from collections import Counter

from schema.build import build_schema

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
