"""Production hides the schema: no GraphiQL, no introspection, no "Did you mean" hints.
Each is on in development and each has its own switch."""

from __future__ import annotations

from typing import Any

import pytest

from schema.errors import without_suggestions
from tests.support.errors import without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

PRODUCTION = {"AIPASTA_ENV": "production"}

SCHEMA_QUERY = "{ __schema { queryType { name } } }"
TYPE_QUERY = '{ __type(name: "Query") { name } }'

# Each misspelling makes graphql-core suggest the right name.
MISSPELLED: list[tuple[str, str, dict[str, Any] | None, str]] = [
    # (case, query, variables, what the message still names)
    ("field", "{ health { statuss } }", None, "Cannot query field 'statuss' on type 'Health'."),
    (
        "argument",
        "{ models(firstt: 1) { totalCount } }",
        None,
        "Unknown argument 'firstt' on field 'Query.models'.",
    ),
    (
        "input field",
        "{ models(filter: { frees: true }) { totalCount } }",
        None,
        "not to include unknown field 'frees'.",
    ),
    (
        "enum literal",
        "{ usage(groupBy: MODELL) { totalRequests } }",
        None,
        "Value 'MODELL' does not exist in 'UsageGroupBy' enum.",
    ),
    (
        "enum variable",
        "query ($g: UsageGroupBy) { usage(groupBy: $g) { totalRequests } }",
        {"g": "MODELL"},
        "Value 'MODELL' does not exist in 'UsageGroupBy' enum.",
    ),
    (
        "type",
        "query ($f: ModelFiltr) { models(filter: $f) { totalCount } }",
        None,
        "Unknown type 'ModelFiltr'.",
    ),
]


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    errors: list[dict[str, Any]] = body["errors"]
    assert errors, body
    return errors[0]


async def graphiql_page(app: RunningApp) -> tuple[int, str, str]:
    async with app.http.get(f"{app.base_url}/graphql", headers={"Accept": "text/html"}) as r:
        return r.status, r.content_type, await r.text()


# --- GraphiQL -------------------------------------------------------------------------


async def test_production_serves_no_graphiql(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(**PRODUCTION)
    status, content_type, text = await graphiql_page(app)
    assert (status, content_type) == (404, "application/json")
    assert "graphiql" not in text.lower()
    assert '"code":"NOT_FOUND"' in text


async def test_graphiql_can_be_switched_on_in_production(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(**PRODUCTION, AIPASTA_GRAPHIQL="true")
    status, content_type, text = await graphiql_page(app)
    assert (status, content_type) == (200, "text/html")
    assert "graphiql" in text.lower()


async def test_graphiql_can_be_switched_off_in_development(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_GRAPHIQL="false")
    status, _, _ = await graphiql_page(app)
    assert status == 404


# --- introspection --------------------------------------------------------------------


@pytest.mark.parametrize(("query", "field"), [(SCHEMA_QUERY, "__schema"), (TYPE_QUERY, "__type")])
async def test_production_refuses_introspection(
    start_app: StartApp, catalog_upstream: FakeUpstream, query: str, field: str
) -> None:
    app = await start_app(**PRODUCTION)
    error = only_error(await app.graphql(query))
    assert without_request_id(error["extensions"]) == {"code": "BAD_USER_INPUT"}
    assert error["message"] == (
        "GraphQL introspection has been disabled, "
        f"but the requested query contained the field '{field}'."
    )


async def test_production_refuses_introspection_beside_other_fields_unexecuted(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(**PRODUCTION)
    app.count_catalog_reads()
    body = await app.graphql("{ modelCatalog { cached } __schema { types { name } } }")
    assert without_request_id(only_error(body)["extensions"]) == {"code": "BAD_USER_INPUT"}
    assert app.catalog_reads == 0


async def test_production_still_answers_typename(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(**PRODUCTION)
    assert await app.graphql("{ __typename }") == {"data": {"__typename": "Query"}}


async def test_introspection_can_be_switched_on_in_production(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(**PRODUCTION, AIPASTA_INTROSPECTION="true")
    body = await app.graphql(SCHEMA_QUERY)
    assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_development_allows_introspection_unless_switched_off(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    dev = await start_app()
    assert (await dev.graphql(TYPE_QUERY))["data"] == {"__type": {"name": "Query"}}
    closed = await start_app(AIPASTA_INTROSPECTION="false")
    assert only_error(await closed.graphql(TYPE_QUERY))["extensions"]["code"] == "BAD_USER_INPUT"


# --- field suggestions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "named"),
    [pytest.param(q, v, n, id=case) for case, q, v, n in MISSPELLED],
)
async def test_production_drops_suggestions(
    start_app: StartApp,
    catalog_upstream: FakeUpstream,
    query: str,
    variables: dict[str, Any] | None,
    named: str,
) -> None:
    app = await start_app(**PRODUCTION)
    body = await app.graphql(query, variables)
    assert only_error(body)["extensions"]["code"] == "BAD_USER_INPUT"
    messages = [error["message"] for error in body["errors"]]
    assert any(named in message for message in messages), messages
    assert not any("Did you mean" in message for message in messages), messages


@pytest.mark.parametrize(
    "overrides", [pytest.param({}, id="development"), pytest.param(PRODUCTION, id="switched-on")]
)
async def test_suggestions_are_kept_in_development_or_when_switched_on(
    start_app: StartApp, catalog_upstream: FakeUpstream, overrides: dict[str, str]
) -> None:
    env = dict(overrides)
    if overrides:
        env["AIPASTA_FIELD_SUGGESTIONS"] = "true"
    app = await start_app(**env)
    error = only_error(await app.graphql("{ health { statuss } }"))
    assert (
        error["message"] == "Cannot query field 'statuss' on type 'Health'. Did you mean 'status'?"
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Cannot query field 'x' on type 'Q'. Did you mean 'y'?",
            "Cannot query field 'x' on type 'Q'.",
        ),
        ("Unknown type 'T'. Did you mean 'A', 'B', or 'C'?", "Unknown type 'T'."),
        ("Unknown argument 'a'. Did you mean 'b' or 'c'?", "Unknown argument 'a'."),
        (
            "Value 'X' does not exist in 'E' enum. Did you mean the enum value 'Y'?",
            "Value 'X' does not exist in 'E' enum.",
        ),
        (
            "Cannot query field 'f' on type 'I'. Did you mean to use an inline fragment on 'A'?",
            "Cannot query field 'f' on type 'I'.",
        ),
        (
            "unknown field 'frees'. Did you mean 'free'? Found: { frees: true }.",
            "unknown field 'frees'. Found: { frees: true }.",
        ),
        # A value a client sent is not a suggestion, whatever it says.
        ("got invalid value 'Did you mean it?'", "got invalid value 'Did you mean it?'"),
    ],
)
def test_without_suggestions_cuts_exactly_the_hint(message: str, expected: str) -> None:
    assert without_suggestions(message) == expected
