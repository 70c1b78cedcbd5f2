"""NUL characters and unpaired surrogates are refused in every string a client sends,
variables and document literals alike, before any resolver runs: nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse_value

from schema.guards import unsafe_literal, unsafe_variable
from tests.streaming.conftest import GraphQLWebSocket
from tests.support.errors import without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

SAVE = "mutation ($input: SaveMessageInput!) { saveMessage(input: $input) { id content } }"
SESSIONS = "{ chatSessions { nodes { id } } }"


def message(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"input": {"sessionId": "s1", "content": content, "isUser": True, **extra}}


def literal_save(content_literal: str) -> str:
    return (
        f'mutation {{ saveMessage(input: {{sessionId: "s1", content: {content_literal}, '
        f"isUser: true}}) {{ id }} }}"
    )


async def nothing_saved(app: RunningApp) -> bool:
    body = await app.graphql(SESSIONS)
    return body == {"data": {"chatSessions": {"nodes": []}}}


def refused(body: dict[str, Any]) -> dict[str, Any]:
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    return error  # type: ignore[no-any-return]


@pytest.fixture
async def app(start_app: StartApp, catalog_upstream: FakeUpstream) -> RunningApp:
    return await start_app()


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        pytest.param(message("a\x00b"), "input.content", id="nul"),
        pytest.param(message("a\ud800b"), "input.content", id="lone-high-surrogate"),
        pytest.param(message("\udc00"), "input.content", id="lone-low-surrogate"),
        pytest.param(message(sessionId="s\x001"), "input.sessionId", id="nul-in-id"),
        pytest.param(
            message(attachments=[{"kind": "file", "url": "https://x.test/a", "name": "a\x00"}]),
            "input.attachments[0].name",
            id="nested-in-a-list",
        ),
        pytest.param({"input": {**message()["input"], "x\x00": 1}}, "input", id="nul-in-a-key"),
    ],
)
async def test_unsafe_variable_is_refused_before_anything_is_saved(
    app: RunningApp, variables: dict[str, Any], field: str
) -> None:
    error = refused(await app.graphql(SAVE, variables))
    assert error["message"] == f"`{field}` contains a NUL byte or an invalid character"
    assert without_request_id(error["extensions"]) == {
        "code": "BAD_USER_INPUT",
        "details": {"field": field},
    }
    assert await nothing_saved(app)


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param('"a\\u0000b"', id="escaped-nul"),
        pytest.param('"a\\u{0}b"', id="braced-escaped-nul"),
        pytest.param('"a\x00b"', id="raw-nul"),
        pytest.param('"""a\x00b"""', id="raw-nul-in-block-string"),
    ],
)
async def test_unsafe_literal_is_refused_before_anything_is_saved(
    app: RunningApp, literal: str
) -> None:
    error = refused(await app.graphql(literal_save(literal)))
    assert error["message"] == "`input.content` contains a NUL byte or an invalid character"
    assert without_request_id(error["extensions"]) == {
        "code": "BAD_USER_INPUT",
        "details": {"field": "input.content"},
    }
    assert await nothing_saved(app)


async def test_unsafe_variable_default_is_refused(app: RunningApp) -> None:
    query = (
        'mutation ($c: String! = "a\\u0000") '
        '{ saveMessage(input: {sessionId: "s1", content: $c, isUser: true}) { id } }'
    )
    assert refused(await app.graphql(query))["extensions"]["details"] == {"field": "c"}
    assert await nothing_saved(app)


@pytest.mark.parametrize(
    "literal",
    [pytest.param('"\\uD800"', id="escaped"), pytest.param('"\ud800"', id="raw")],
)
async def test_lone_surrogate_literal_is_a_syntax_error(app: RunningApp, literal: str) -> None:
    # graphql-core's lexer refuses these itself; the answer is the same bad input.
    assert "Syntax Error" in refused(await app.graphql(literal_save(literal)))["message"]
    assert await nothing_saved(app)


async def test_paired_surrogates_and_other_control_text_are_fine(app: RunningApp) -> None:
    # JSON sends the emoji as the escaped pair \ud83d\ude00, which decodes to one character.
    content = "tab\tnewline\n emoji \U0001f600"
    body = await app.graphql(SAVE, message(content))
    assert body["data"]["saveMessage"]["content"] == content
    assert not await nothing_saved(app)


async def test_unsafe_variable_over_websocket_is_an_error_and_the_socket_stays(
    app: RunningApp,
) -> None:
    ws = await GraphQLWebSocket.open(app)
    try:
        op = await ws.subscribe(SAVE, message("a\x00b"))
        answer = await ws.message(op)
        assert answer["type"] == "error", answer
        (error,) = answer["payload"]
        assert without_request_id(error["extensions"]) == {
            "code": "BAD_USER_INPUT",
            "details": {"field": "input.content"},
        }
        assert (await ws.message(await ws.subscribe("{ __typename }", {})))["type"] == "next"
    finally:
        await ws.close()
    assert await nothing_saved(app)


@pytest.mark.parametrize(
    ("variables", "where"),
    [
        ({}, None),
        (None, None),
        ({"a": ["ok", {"b": "fine", "c": [1, 2.5, True, None]}]}, None),
        ({"a": ["ok", {"b": "bad\x00"}]}, "a[1].b"),
        ({"\x00": "x"}, "variables"),
        ({"a": "\U0001f600", "b": "\ud83d"}, "b"),
    ],
)
def test_unsafe_variable_names_the_field(
    variables: dict[str, Any] | None, where: str | None
) -> None:
    assert unsafe_variable(variables) == where


@pytest.mark.parametrize(
    ("literal", "where"),
    [
        ('{ a: "ok", b: ["ok", { c: "bad\\u0000" }] }', "arg.b[1].c"),
        ('["ok", 1, null, ENUM, "ok"]', None),
        ('"\\u0000"', "arg"),
    ],
)
def test_unsafe_literal_names_the_field(literal: str, where: str | None) -> None:
    assert unsafe_literal(parse_value(literal), "arg") == where
