"""Every error, whichever layer answers it, carries `extensions.requestId`: over HTTP the
id of the response's `X-Request-ID`, over a websocket the operation's own id (the one in
its log line)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from resolvers.catalog.service import Catalog
from tests.security.test_websocket_frames import acknowledged, reply, subscribe
from tests.support.errors import REQUEST_ID
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

BAD_RANGE = (
    '{ usage(since: "2025-03-03T00:00:00Z", until: "2025-03-02T00:00:00Z") { totalRequests } }'
)


async def error_and_id(
    app: RunningApp, *, path: str = "/graphql", headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, dict[str, Any], str]:
    """The status, the one error and the X-Request-ID of an HTTP answer."""
    method = "POST" if path == "/graphql" else "GET"
    async with app.http.request(
        method, f"{app.base_url}{path}", headers=headers, **kwargs
    ) as response:
        (error,) = (await response.json())["errors"]
        return response.status, error, response.headers["X-Request-ID"]


async def test_every_error_carries_the_request_id_of_its_answer(
    start_app: StartApp,
    catalog_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def broken(self: Catalog, providers: object = None) -> None:
        raise RuntimeError("a bug")

    app = await start_app(AIPASTA_RATE_LIMIT="4/minute", AIPASTA_MAX_BODY_BYTES=1024)
    await app.catalog_settled()
    answers = {
        "validation": await error_and_id(app, json={"query": "{ nosuchfield }"}),
        "resolver": await error_and_id(app, json={"query": BAD_RANGE}),
        "too deep": await error_and_id(
            app, data=b"[" * 100 + b"]" * 100, headers={"Content-Type": "application/json"}
        ),
        "too large": await error_and_id(app, json={"query": "{ __typename }", "x": "y" * 2000}),
    }
    monkeypatch.setattr(Catalog, "view", broken)
    answers["internal"] = await error_and_id(app, json={"query": "{ modelCatalog { cached } }"})
    answers["rate limited"] = await error_and_id(app, json={"query": "{ __typename }"})

    required = await start_app(AIPASTA_AUTH="required", AIPASTA_METRICS_TOKEN="m" * 32)
    answers["unauthenticated"] = await error_and_id(
        required, json={"query": "{ chatSessions { nodes { id } } }"}
    )
    answers["metrics token"] = await error_and_id(required, path="/metrics")

    expected = {
        "validation": (200, "BAD_USER_INPUT"),
        "resolver": (200, "BAD_USER_INPUT"),
        "too deep": (400, "BAD_USER_INPUT"),
        "too large": (413, "BAD_USER_INPUT"),
        "internal": (200, "INTERNAL"),
        "rate limited": (429, "RATE_LIMITED"),
        "unauthenticated": (200, "UNAUTHENTICATED"),
        "metrics token": (401, "UNAUTHENTICATED"),
    }
    assert {k: (s, e["extensions"]["code"]) for k, (s, e, _) in answers.items()} == expected
    for name, (_, error, header) in answers.items():
        assert error["extensions"]["requestId"] == header, name
        assert REQUEST_ID.fullmatch(header), name
    assert len({header for _, _, header in answers.values()}) == len(answers)

    # Over a websocket: a refused subscribe has its own id, the one its log line names.
    caplog.clear()
    ws: aiohttp.ClientWebSocketResponse = await acknowledged(app)
    await ws.send_json(subscribe("1"))
    refused = await reply(ws)
    await ws.close()
    assert (refused["id"], refused["type"]) == ("1", "error")
    (error,) = refused["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    request_id = error["extensions"]["requestId"]
    assert REQUEST_ID.fullmatch(request_id)
    (line,) = [r.getMessage() for r in caplog.records if request_id in r.getMessage()]
    assert "RATE_LIMITED on subscribe" in line
