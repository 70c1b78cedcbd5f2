"""Parsed and validated query texts are reused; the checks they passed still run."""

from __future__ import annotations

from tests.support.errors import body_without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import StartApp

MODEL = "query ($id: ID!) { model(id: $id) { id } }"


async def test_a_cached_query_still_refuses_unsafe_variables(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    ok = await app.graphql(MODEL, {"id": "openai/gpt-4o-mini"})
    assert ok["data"]["model"]["id"] == "openrouter:openai/gpt-4o-mini"
    refused = await app.graphql(MODEL, {"id": "openai/gpt\x00-4o-mini"})
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    again = await app.graphql(MODEL, {"id": "openai/gpt-4o-mini"})
    assert again == ok


async def test_errors_are_reported_alike_every_time(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    for query, fragment in (("{ health { ", "Syntax Error"), ("{ nosuchfield }", "nosuchfield")):
        first, second = await app.graphql(query), await app.graphql(query)
        # Alike but for the request id, which is each request's own.
        assert body_without_request_id(first) == body_without_request_id(second)
        ids = [body["errors"][0]["extensions"]["requestId"] for body in (first, second)]
        assert ids[0] != ids[1]
        assert first["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert fragment in first["errors"][0]["message"]
