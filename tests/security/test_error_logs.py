"""What the log says about a failed operation: one line with the request id and the code
for a client error, never the query text or its variables; a traceback only for an
unexpected (INTERNAL) error."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from resolvers.catalog.service import Catalog
from tests.security.conftest import post
from tests.streaming.conftest import (
    CHAT_STREAM,
    MISTRAL,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    StreamApp,
    user_says,
)
from tests.support.fake_upstream import FakeUpstream, http_error
from tests.support.server import RunningApp, StartApp

SECRET = "sk-or-v1-0123456789abcdef-user-literal"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def lines_about(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if request_id in r.getMessage()]


def assert_one_quiet_line(
    caplog: pytest.LogCaptureFixture, request_id: str, code: str, *, level: int = logging.INFO
) -> None:
    (record,) = lines_about(caplog, request_id)
    assert record.levelno == level
    assert code in record.getMessage()
    assert record.exc_info is None
    assert "\n" not in record.getMessage()
    # Nothing at all was logged at ERROR, and the user's text is nowhere.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert SECRET not in caplog.text


async def failed(app: RunningApp, query: str, **kwargs: Any) -> tuple[str, str]:
    """The request id and the code of an operation that fails with one error."""
    answer = await post(app, query, **kwargs)
    (error,) = answer.body["errors"]
    return answer.headers["X-Request-ID"], error["extensions"]["code"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (f'{{ models(first: "{SECRET}") {{ totalCount }} }}', None),  # a literal
        ("query($n: Int) { models(first: $n) { totalCount } }", {"n": SECRET}),  # a variable
        (f'{{ health {{ "{SECRET}" ', None),  # a syntax error quoting the text
    ],
)
async def test_bad_input_is_one_info_line_without_the_query(
    start_app: StartApp, logs: pytest.LogCaptureFixture, query: str, variables: Any
) -> None:
    app = await start_app()
    logs.clear()
    request_id, code = await failed(app, query, variables=variables)
    assert code == "BAD_USER_INPUT"
    assert_one_quiet_line(logs, request_id, "BAD_USER_INPUT")


async def test_unauthenticated_and_not_found_are_one_line_each(
    start_app: StartApp, logs: pytest.LogCaptureFixture
) -> None:
    required = await start_app(AIPASTA_AUTH="required")
    logs.clear()
    request_id, code = await failed(required, "{ chatSessions { nodes { id } } }")
    assert code == "UNAUTHENTICATED"
    assert_one_quiet_line(logs, request_id, "UNAUTHENTICATED")

    local = await start_app()
    logs.clear()
    request_id, code = await failed(
        local, f'{{ chatHistory(sessionId: "{SECRET}") {{ nodes {{ id }} }} }}'
    )
    assert code == "NOT_FOUND"
    assert_one_quiet_line(logs, request_id, "NOT_FOUND")


async def test_a_rate_limited_request_is_one_line_with_its_request_id(
    start_app: StartApp, logs: pytest.LogCaptureFixture
) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="1/minute")
    await post(app)
    logs.clear()
    answer = await post(app, f'{{ models(first: "{SECRET}") {{ totalCount }} }}')
    assert answer.status == 429
    assert_one_quiet_line(logs, answer.headers["X-Request-ID"], "RATE_LIMITED")


async def test_an_unexpected_error_logs_one_traceback_with_its_request_id(
    start_app: StartApp, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Catalog, providers: object = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Catalog, "view", broken)
    app = await start_app()
    logs.clear()
    request_id, code = await failed(app, "{ modelCatalog { cached } }")
    assert code == "INTERNAL"
    (record,) = lines_about(logs, request_id)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
    # Only ours: Strawberry's own logger no longer repeats it.
    assert [r for r in logs.records if r.exc_info] == [record]


async def test_websocket_operation_errors_are_one_line_each(
    start_app: StartApp, logs: pytest.LogCaptureFixture
) -> None:
    app = await start_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        logs.clear()
        outcome = await ws.run(f'{{ models(first: "{SECRET}") {{ totalCount }} }}', {})
        assert [e["extensions"]["code"] for e in outcome.errors] == ["BAD_USER_INPUT"]
    finally:
        await ws.close()
    (record,) = [r for r in logs.records if "BAD_USER_INPUT" in r.getMessage()]
    (request_id,) = REQUEST_ID.findall(record.getMessage())
    assert_one_quiet_line(logs, request_id, "BAD_USER_INPUT")


async def test_an_unexpected_error_over_a_websocket_logs_its_traceback_once(
    start_app: StartApp, logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Catalog, providers: object = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Catalog, "view", broken)
    app = await start_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        logs.clear()
        outcome = await ws.run("{ modelCatalog { cached } }", {})
    finally:
        await ws.close()
    (error,) = outcome.errors
    assert error["extensions"]["code"] == "INTERNAL"
    (record,) = [r for r in logs.records if r.exc_info]
    assert record.levelno == logging.ERROR
    assert error["extensions"]["requestId"] in record.getMessage()


async def test_a_failure_told_in_band_is_one_warning_line_without_the_upstream_text(
    sse: FakeUpstream, stream_app: StreamApp, logs: pytest.LogCaptureFixture
) -> None:
    # The upstream's answer may quote the prompt (or worse): the code says enough.
    sse.script(MISTRAL_UPSTREAM, http_error(402, f"Insufficient credits for {SECRET}"))
    app = await stream_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        logs.clear()
        variables = {"input": {"model": MISTRAL, "messages": user_says(SECRET)}}
        outcome = await ws.run(CHAT_STREAM, variables)
    finally:
        await ws.close()
    (failed,) = outcome.events
    assert (failed["__typename"], failed["code"]) == ("ChatFailed", "INSUFFICIENT_CREDITS")
    (record,) = [r for r in logs.records if "INSUFFICIENT_CREDITS" in r.getMessage()]
    assert MISTRAL in record.getMessage()
    (request_id,) = REQUEST_ID.findall(record.getMessage())
    assert_one_quiet_line(logs, request_id, "INSUFFICIENT_CREDITS", level=logging.WARNING)
