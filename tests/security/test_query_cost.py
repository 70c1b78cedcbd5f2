"""Query cost: every limit's work is linear in the document, and the estimated number of
resolved fields is capped (`AIPASTA_MAX_QUERY_COST`).

A refused operation must not run: the queries that could read the catalog are checked
against the fake upstream's call counts.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, get_introspection_query, parse

from aipasta.settings import Settings
from schema.build import build_schema
from schema.limits import DEFAULT_LIST_WEIGHT, CostEstimator, memoised, shape
from tests.security.test_graphql_limits import catalog_calls, refusal
from tests.streaming.conftest import GraphQLWebSocket
from tests.support.errors import without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import StartApp

README = Path(__file__).resolve().parents[2] / "README.md"


def fragment_bomb(levels: int = 30) -> str:
    """~10 tokens a level; F_i spreads F_{i-1} twice: 2^(levels-1) fields once expanded."""
    fragments = ["fragment F0 on Query { __typename }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return f"{{ ...F{levels - 1} }} " + " ".join(fragments)


BOMB = fragment_bomb()
BOMB_COST = 2**29


def cost_refusal(body: dict[str, Any], limit: int, cost: int) -> None:
    message = refusal(body)
    assert message.startswith(f"Query cost {cost} exceeds the limit of {limit}"), message
    assert "AIPASTA_MAX_QUERY_COST" in message
    assert body["errors"][0]["extensions"]["details"] == {"limit": limit, "cost": cost}


async def test_the_fragment_bomb_is_refused_over_http(start_app: StartApp) -> None:
    app = await start_app()
    cost_refusal(await app.graphql(BOMB), 60_000, BOMB_COST)


async def test_the_fragment_bomb_is_refused_over_a_websocket(start_app: StartApp) -> None:
    app = await start_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        answer = await ws.message(await ws.subscribe(BOMB, {}))
        assert answer["type"] == "error", answer
        (error,) = answer["payload"]
        assert without_request_id(error["extensions"]) == {
            "code": "BAD_USER_INPUT",
            "details": {"limit": 60_000, "cost": BOMB_COST},
        }
        # The socket stays usable.
        assert (await ws.message(await ws.subscribe("{ __typename }", {})))["type"] == "next"
    finally:
        await ws.close()


async def test_health_keeps_answering_while_a_client_sends_30_bombs(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()  # with a provider to serve chat, so health can say ok

    async def bombs() -> None:
        for _ in range(30):
            # A new text each time: the parse and validation caches must not be the reason.
            body = await app.graphql(BOMB + f" # {_}")
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    sender = asyncio.create_task(bombs())
    answers = 0
    try:
        while not sender.done() or answers == 0:
            started = time.perf_counter()
            status, body = await app.get("/health")
            assert (status, body["status"]) == (200, "ok")
            assert time.perf_counter() - started < 1.0
            answers += 1
    finally:
        await sender
    assert answers >= 1


async def test_an_alias_bomb_is_refused_by_the_alias_limit(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    app.count_catalog_reads()
    fragments = ["fragment A0 on Query { m: modelCatalog { cached } }"]
    fragments += [f"fragment A{i} on Query {{ ...A{i - 1} ...A{i - 1} }}" for i in range(1, 30)]
    body = await app.graphql("{ ...A29 } " + " ".join(fragments))
    assert refusal(body) == f"{2**29} aliases found. Allowed: 30"
    assert catalog_calls(app) == 0


# --- what counts --------------------------------------------------------------------------


PAGE = "query ($n: Int) { models(first: $n) { nodes { id } } }"


async def test_a_page_counts_its_size_from_a_variable(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_MAX_QUERY_COST=100)
    app.count_catalog_reads()
    # models 1 + nodes 1 + n ids.
    body = await app.graphql(PAGE, {"n": 98})
    assert len(body["data"]["models"]["nodes"]) == 11  # the fixture's whole catalog
    assert catalog_calls(app) == 1
    cost_refusal(await app.graphql(PAGE, {"n": 99}), 100, 101)
    assert catalog_calls(app) == 1


async def test_a_page_counts_a_literal_size_and_the_default_otherwise(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_MAX_QUERY_COST=40)
    cost_refusal(await app.graphql("{ models(first: 39) { nodes { id } } }"), 40, 41)
    # chatSessions defaults to first: 20; its nodes carry two fields each.
    cost_refusal(await app.graphql("{ chatSessions { nodes { id title } } }"), 40, 42)


async def test_introspection_counts_toward_depth(start_app: StartApp) -> None:
    app = await start_app()
    of_type = "ofType { " * 16 + "name" + " }" * 16
    body = await app.graphql(f"{{ __schema {{ types {{ {of_type} }} }} }}")
    assert refusal(body) == "'anonymous' exceeds maximum operation depth of 15"
    assert body["errors"][0]["extensions"]["details"] == {"limit": 15, "depth": 18}


async def test_the_standard_introspection_query_passes_in_development(
    start_app: StartApp,
) -> None:
    app = await start_app()
    body = await app.graphql(get_introspection_query(True, True, True, True, True, one_of=True))
    assert "errors" not in body, body
    assert body["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}


# --- the defaults let every real query through --------------------------------------------

MODEL = (
    "id upstreamId provider name description contextLength inputModalities "
    "outputModalities multimodal free supportedParameters "
    "pricing { known promptPerMillion completionPerMillion perRequest perImage }"
)
MESSAGE = (
    "id sessionId content isUser role model timestamp cost modelCount status "
    "attachments { kind url name mimeType }"
)
PAGE_INFO = "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
FRONTEND_OPERATIONS = {
    "the whole catalog, every list": (
        "{ modelCatalog { cached stale fetchedAt expiresAt "
        + " ".join(f"{name} {{ {MODEL} }}" for name in ("all", "multimodal", "textOnly"))
        + f" free {{ {MODEL} }} paid {{ {MODEL} }} byProvider {{ provider models {{ {MODEL} }} }}"
        " stats { total multimodal textOnly free paid byProvider { provider count } }"
        " providers { provider status modelCount fetchedAt error } } }"
    ),
    "the largest models page": (
        f"{{ models(first: 200) {{ totalCount nodes {{ {MODEL} }} {PAGE_INFO} }} }}"
    ),
    "the largest history page": (
        f'{{ chatHistory(sessionId: "s", last: 200) {{ nodes {{ {MESSAGE} }} {PAGE_INFO} }} }}'
    ),
    "the largest sessions page": (
        "{ chatSessions(first: 100) { nodes { id title messageCount lastMessage totalCost "
        f"createdAt updatedAt }} {PAGE_INFO} }} }}"
    ),
    "compare": (
        "mutation { compare(input: { models: [], messages: [] }) { model "
        "result { id model provider message { role content } finishReason "
        "usage { promptTokens completionTokens totalTokens estimated } "
        "cost { inputCost outputCost totalCost known } latencyMs messageId } "
        "error { code message retryable } } }"
    ),
    "GraphiQL's introspection": get_introspection_query(True, True, True, True, True, one_of=True),
}


def readme_operations() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"```graphql\n(.*?)```", text, re.S)
    # GraphQL inside the README's TypeScript examples (`query: \`...\``).
    blocks += re.findall(r"query: `(.*?)`", text, re.S)
    assert len(blocks) >= 3
    return blocks


@pytest.mark.parametrize(
    "query",
    [pytest.param(q, id=f"README {i}") for i, q in enumerate(readme_operations())]
    + [pytest.param(q, id=name) for name, q in FRONTEND_OPERATIONS.items()],
)
def test_real_operations_pass_the_default_limits(query: str) -> None:
    settings = Settings.model_construct()
    schema = build_schema(settings)._schema
    document = parse(query, max_tokens=settings.max_tokens)
    fragments = memoised(document, lambda f, done: shape(f.selection_set, done))
    (operation,) = (d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    measured = shape(operation.selection_set, fragments)
    assert measured.depth <= settings.max_depth
    assert measured.aliases <= settings.max_aliases
    cost = CostEstimator(schema, {}, DEFAULT_LIST_WEIGHT).operation_cost(document, operation)
    assert cost <= settings.max_query_cost
