"""The body size cap (declared and streamed) and CORS at the HTTP edge."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from tests.security.conftest import TYPENAME, post, rate_limited_body, raw_exchange
from tests.support.errors import body_without_request_id, without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

ALLOWED = "http://localhost:3000"  # in the default AIPASTA_CORS_ORIGINS
FOREIGN = "https://evil.example"


def too_large(limit: int) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": f"Request body too large: the limit is {limit} bytes",
                "extensions": {"code": "BAD_USER_INPUT", "limit": limit},
            }
        ],
    }


def parse(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def request_head(app: RunningApp, *headers: str) -> bytes:
    host = app.base_url.removeprefix("http://")
    lines = ["POST /graphql HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


# --- the body cap ---------------------------------------------------------------------


async def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read(
    start_app: StartApp,
) -> None:
    app = await start_app()
    # Only the head is sent: the answer cannot be waiting for the 9 MB.
    answer = await raw_exchange(app, request_head(app, "Content-Length: 9000000"))
    status, headers, body = parse(answer)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert len(headers["x-request-id"]) == 32  # to quote in a bug report
    assert body_without_request_id(body, headers["x-request-id"]) == too_large(8 * 1024 * 1024)


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_cap(
    start_app: StartApp,
) -> None:
    app = await start_app(AIPASTA_MAX_BODY_BYTES=1024)
    # One 2000-byte chunk and no end: the server must answer without the rest.
    chunk = b"x" * 2000
    head = request_head(app, "Transfer-Encoding: chunked")
    answer = await raw_exchange(app, head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    status, headers, body = parse(answer)
    assert status == 413
    assert body_without_request_id(body, headers["x-request-id"]) == too_large(1024)


async def test_a_chunked_body_under_the_cap_reaches_graphql_whole(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_MAX_BODY_BYTES=1024)
    payload = json.dumps({"query": TYPENAME}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 5):
            yield payload[i : i + 5]

    async with app.http.post(
        f"{app.base_url}/graphql", data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert response.status == 200
        assert await response.json() == {"data": {"__typename": "Query"}}


async def test_a_five_megabyte_attachment_is_not_stopped_by_the_cap(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG" * 1_250_000).decode()
    variables = {
        "input": {
            "model": "openrouter:openai/gpt-4o-mini",
            "messages": [
                {
                    "role": "USER",
                    "content": "What is in this picture?",
                    "attachments": [{"kind": "image", "url": data_url}],
                }
            ],
        }
    }
    body_size = len(json.dumps({"query": CHAT, "variables": variables}))
    assert 6_500_000 < body_size < 7_000_000

    answer = await post(app, CHAT, variables=variables)
    # The body reached GraphQL: what refuses it is the attachment check, by field.
    assert answer.status == 200
    (error,) = answer.body["errors"]
    assert without_request_id(error["extensions"], answer.headers["X-Request-ID"]) == {
        "code": "BAD_USER_INPUT",
        "details": {"field": "input.messages[0].attachments[0].url"},
    }


CHAT = "mutation Chat($input: ChatInput!) { chat(input: $input) { id } }"


# --- CORS -----------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_preflight_is_answered_for_allowed_origins_only_and_never_counted(
    start_app: StartApp,
) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="1/minute")
    for _ in range(3):
        async with app.http.options(
            f"{app.base_url}/graphql", headers=preflight(ALLOWED)
        ) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
            allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
            assert {"authorization", "content-type"} <= set(allowed_headers.split(", "))
            assert "POST" in response.headers["Access-Control-Allow-Methods"]

    async with app.http.options(f"{app.base_url}/graphql", headers=preflight(FOREIGN)) as response:
        assert response.status == 400
        assert "Access-Control-Allow-Origin" not in response.headers

    # Preflights are not operations: the one allowed operation is still there.
    answer = await post(app, headers={"Origin": ALLOWED})
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_cors_headers_go_to_allowed_origins_even_on_a_refusal(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="1/minute")
    foreign = await post(app, headers={"Origin": FOREIGN})
    assert foreign.status == 200
    assert "Access-Control-Allow-Origin" not in foreign.headers

    refused = await post(app, headers={"Origin": ALLOWED})
    assert refused.status == 429
    # The browser may read the refusal and when to retry.
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "retry-after" in refused.headers["Access-Control-Expose-Headers"].lower()
    retry_after = int(refused.headers["Retry-After"])
    assert body_without_request_id(
        refused.body, refused.headers["X-Request-ID"]
    ) == rate_limited_body(
        f"Rate limit exceeded for this address: retry in {retry_after} s",
        retry_after,
        1,
    )
