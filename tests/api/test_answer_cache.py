"""Public catalog answers kept as bytes: the same bytes as a fresh execution, a new
answer as soon as a provider's list changes, ETag/304 for polling, never a user's answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import parse
from multidict import CIMultiDict

from aipasta.edge.answer_cache import matches, public_operation
from aipasta.edge.graphql_view import GatewayGraphQL
from aipasta.edge.request_ids import REQUEST_ID_HEADER
from tests.signin.conftest import JWT_SECRET, make_jwt
from tests.support.fake_upstream import FakeUpstream, Reply, fixture_json
from tests.support.server import RunningApp, StartApp

CATALOG = (
    "query Picker($first: Int) { modelCatalog { all { id name pricing { promptPerMillion } } "
    "stats { total } } models(first: $first) { totalCount nodes { id } } }"
)
VARIABLES = {"first": 3}
REFRESH = "mutation { refreshModels { stats { total } } }"

Answer = tuple[int, CIMultiDict[str], bytes]


async def post(
    app: RunningApp, query: str, variables: dict[str, Any] | None = None, **headers: str
) -> Answer:
    async with app.http.post(
        f"{app.base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
    ) as response:
        return response.status, response.headers.copy(), await response.read()


async def get(
    app: RunningApp, query: str, variables: dict[str, Any] | None = None, **headers: str
) -> Answer:
    params = {"query": query, "variables": json.dumps(variables or {})}
    async with app.http.get(f"{app.base_url}/graphql", params=params, headers=headers) as response:
        return response.status, response.headers.copy(), await response.read()


async def started(start_app: StartApp, **overrides: str) -> RunningApp:
    """An app whose catalog is loaded: the answer that loads it is not kept (the lists
    changed while it ran)."""
    app = await start_app(**overrides)
    _, headers, _ = await get(app, CATALOG, VARIABLES)
    assert "ETag" not in headers
    return app


def total(body: bytes) -> int:
    return int(json.loads(body)["data"]["modelCatalog"]["stats"]["total"])


async def test_cached_answer_is_byte_identical_to_a_fresh_execution(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    cached_app = await started(start_app)
    plain_app = await started(start_app, AIPASTA_ANSWER_CACHE_BYTES="0")

    first = await post(cached_app, CATALOG, VARIABLES)
    again = await post(cached_app, CATALOG, VARIABLES)
    plain = await post(plain_app, CATALOG, VARIABLES)

    assert first[0] == again[0] == plain[0] == 200
    assert first[2] == again[2] == plain[2]
    assert total(first[2]) == 11
    assert first[1]["ETag"] == again[1]["ETag"]
    assert "ETag" not in plain[1]
    # Each answer still carries its own request id.
    assert first[1][REQUEST_ID_HEADER] != again[1][REQUEST_ID_HEADER]
    # Other variables are another answer.
    other = await post(cached_app, CATALOG, {"first": 1})
    assert len(json.loads(other[2])["data"]["models"]["nodes"]) == 1
    assert other[1]["ETag"] != first[1]["ETag"]


async def test_get_revalidates_with_etag_and_gets_304_without_body(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app)
    status, headers, body = await get(app, CATALOG, VARIABLES)
    assert status == 200 and total(body) == 11
    etag = headers["ETag"]
    assert headers["Cache-Control"] == "no-cache"

    status, headers, body = await get(app, CATALOG, VARIABLES, **{"If-None-Match": etag})
    assert status == 304
    assert body == b""
    assert headers["ETag"] == etag
    assert headers["Cache-Control"] == "no-cache"
    assert headers[REQUEST_ID_HEADER]

    # A list of tags, weak or not, matches too; another tag gets the full answer.
    listed = await get(app, CATALOG, VARIABLES, **{"If-None-Match": f'"x", W/{etag}'})
    assert listed[0] == 304
    stale = await get(app, CATALOG, VARIABLES, **{"If-None-Match": '"not-it"'})
    assert stale[0] == 200 and total(stale[2]) == 11


async def test_changed_list_gives_new_answer_at_once_unchanged_keeps_it(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app)
    _, headers, before = await get(app, CATALOG, VARIABLES)
    etag = headers["ETag"]

    # A refresh bringing the same list back keeps the answer and its tag.
    assert "errors" not in await app.graphql(REFRESH)
    assert catalog_upstream.calls["/openrouter/models"] == 2
    status, _, _ = await get(app, CATALOG, VARIABLES, **{"If-None-Match": etag})
    assert status == 304

    # One provider listing one model fewer: the next poll gets it, with a new tag.
    listing = fixture_json("openrouter_models.json")
    listing["data"] = listing["data"][1:]
    catalog_upstream.set("/openrouter/models", Reply(body=listing))
    assert "errors" not in await app.graphql(REFRESH)
    status, headers, after = await get(app, CATALOG, VARIABLES, **{"If-None-Match": etag})
    assert status == 200
    assert total(after) == total(before) - 1
    assert headers["ETag"] != etag
    # POST sees the same new answer.
    assert (await post(app, CATALOG, VARIABLES))[2] == after


async def test_answer_depending_on_the_user_is_never_shared(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_AUTH="required", AIPASTA_JWT_SECRET=JWT_SECRET)
    mixed = "{ models(first: 1) { totalCount } chatSessions(first: 5) { nodes { id } } }"
    alice = {"Authorization": f"Bearer {make_jwt('alice')}"}

    status, headers, body = await get(app, mixed, None, **alice)
    assert status == 200 and json.loads(body)["data"]["chatSessions"] == {"nodes": []}
    assert "ETag" not in headers

    # Without a credential the same text is refused, not given alice's answer.
    _, headers, body = await get(app, mixed)
    answer = json.loads(body)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "ETag" not in headers


async def test_answers_with_errors_are_not_kept(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app)
    query = "query($first: Int) { models(first: $first) { totalCount } }"
    for _ in range(2):
        _, headers, body = await get(app, query, {"first": 500})
        assert json.loads(body)["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "ETag" not in headers
    # Same text, valid variables: kept.
    _, headers, _ = await get(app, query, {"first": 5})
    assert "ETag" in headers


async def test_rate_limits_still_count_cached_answers(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app, AIPASTA_RATE_LIMIT="3/minute", AIPASTA_IP_FLOOD_LIMIT="3/minute")
    answers = [await get(app, CATALOG, VARIABLES) for _ in range(3)]
    assert [("ETag" in headers) for _, headers, _ in answers[:2]] == [True] * 2
    refused = json.loads(answers[2][2])
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize(
    ("query", "public"),
    [
        ("{ models { totalCount } }", True),
        ('{ model(id: "x") { id } __typename }', True),
        ("{ modelCatalog { all { id } stats { total } byProvider { provider } } }", True),
        ("{ modelCatalog { cached } }", False),  # per request
        ("{ modelCatalog { stale all { id } } }", False),  # changes with time
        ("{ modelCatalog { providers { error } } }", False),
        ("{ health { status } }", False),  # live
        ("{ models { totalCount } usage { totalTokens } }", False),  # the user's
        ("{ ...F } fragment F on Query { models { totalCount } }", False),
        ("mutation { refreshModels { stats { total } } }", False),
    ],
)
def test_only_operations_of_public_catalog_fields_are_kept(query: str, public: bool) -> None:
    assert public_operation(parse(query), None) is public


def test_operation_name_picks_the_operation_judged() -> None:
    document = parse("query A { models { totalCount } } query B { health { status } }")
    assert public_operation(document, "A")
    assert not public_operation(document, "B")
    assert not public_operation(document, None)  # ambiguous: Strawberry refuses it


def test_if_none_match_comparison() -> None:
    assert matches('"abc"', '"abc"')
    assert matches('W/"abc"', '"abc"')
    assert matches('"x" , "abc"', '"abc"')
    assert matches("*", '"abc"')
    assert not matches('"abcd"', '"abc"')
    assert not matches(None, '"abc"')


# --- the early reply: a kept answer before Strawberry reads the request ----------------


async def test_a_kept_answer_goes_out_without_strawberrys_request_handling(
    start_app: StartApp, catalog_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await started(start_app)
    _, headers, kept = await get(app, CATALOG, VARIABLES)
    contexts = 0
    get_context = GatewayGraphQL.get_context

    async def counted(self: GatewayGraphQL, request: Any, response: Any) -> Any:
        nonlocal contexts
        contexts += 1
        return await get_context(self, request, response)

    monkeypatch.setattr(GatewayGraphQL, "get_context", counted)
    app.count_catalog_reads()

    assert (await post(app, CATALOG, VARIABLES))[2] == kept
    assert (await get(app, CATALOG, VARIABLES))[2] == kept
    status, again, body = await get(app, CATALOG, VARIABLES, **{"If-None-Match": headers["ETag"]})
    assert (status, body, again["ETag"]) == (304, b"", headers["ETag"])
    assert contexts == 0
    # Each kept answer still asks the catalog, so a list that is due is refreshed.
    assert app.catalog_reads == 3
    # Anything else still runs the normal way.
    assert "errors" not in await app.graphql("{ modelCatalog { cached } }")
    assert contexts == 1


async def test_a_refused_credential_gets_the_kept_answer_everyone_gets(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app, AIPASTA_AUTH="required", AIPASTA_JWT_SECRET=JWT_SECRET)
    anonymous = await post(app, CATALOG, VARIABLES)
    assert anonymous[0] == 200 and "ETag" in anonymous[1]
    for credential in ("Bearer not-a-key", "Bearer " + make_jwt("alice"), "Basic Zm9vOmJhcg=="):
        status, headers, body = await post(app, CATALOG, VARIABLES, Authorization=credential)
        assert (status, body, headers["ETag"]) == (200, anonymous[2], anonymous[1]["ETag"])
        assert headers["Cache-Control"] == "no-cache"
        assert headers[REQUEST_ID_HEADER] != anonymous[1][REQUEST_ID_HEADER]
    # What depends on the user still refuses that credential.
    sessions = "{ chatSessions(first: 5) { nodes { id } } }"
    _, _, body = await post(app, sessions, None, Authorization="Bearer not-a-key")
    assert json.loads(body)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_trusted_proxys_request_id_is_kept_on_a_kept_answer(
    start_app: StartApp, catalog_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server's uvicorn would otherwise rewrite the loopback peer itself.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")
    app = await started(start_app, AIPASTA_TRUSTED_PROXIES="127.0.0.1/32")
    await post(app, CATALOG, VARIABLES)
    _, headers, _ = await post(app, CATALOG, VARIABLES, **{REQUEST_ID_HEADER: "edge-42"})
    assert "ETag" in headers
    assert headers.getall(REQUEST_ID_HEADER) == ["edge-42"]


async def test_a_kept_query_asked_as_a_stream_or_a_batch_is_not_answered_from_the_cache(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await started(start_app)
    _, _, kept = await post(app, CATALOG, VARIABLES)
    request = {"query": CATALOG, "variables": VARIABLES}
    async with app.http.post(
        f"{app.base_url}/graphql", json=request, headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.content_type == "text/event-stream"
        events = await response.text()
    assert "event: next" in events and "event: complete" in events
    async with app.http.post(f"{app.base_url}/graphql", json=[request]) as response:
        assert response.status == 400
        assert "ETag" not in response.headers
    # A body in pieces is read whole, as Strawberry reads it.
    body = json.dumps(request).encode()

    async def pieces() -> Any:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    async with app.http.post(
        f"{app.base_url}/graphql", data=pieces(), headers={"Content-Type": "application/json"}
    ) as response:
        assert (response.status, await response.read()) == (200, kept)
        assert "ETag" in response.headers
