"""GraphiQL in a real headless Chromium, with every non-loopback destination blocked.

The page must work from the server's own files alone: a user signs in through the
headers editor, runs a query over HTTP and watches a `chatStream` subscription stream in
over graphql-transport-ws. Skipped where no `chromium` is installed (`.ci/run` installs
Debian's).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.streaming.conftest import MISTRAL, MISTRAL_UPSTREAM, StreamApp
from tests.support.cdp import CHROMIUM, Page, chromium
from tests.support.fake_upstream import FakeUpstream, Finish, Text, Wait, steps

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary (apt-get install chromium) to drive GraphiQL"
)

USAGE = "{ usage { totalRequests } }"
SUBSCRIPTION = (
    f'subscription {{ chatStream(input: {{model: "{MISTRAL}", '
    'messages: [{role: USER, content: "Say hello"}]}) { __typename '
    "... on ChatDelta { content index } ... on ChatCompleted { content finishReason } } }"
)
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESPONSE = ".graphiql-response .CodeMirror"


def editor(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)}).CodeMirror"


async def replace_text(page: Page, selector: str, text: str) -> None:
    """Focus an editor, select all of it and type `text` over it."""
    await page.evaluate(
        f"(() => {{ const cm = {editor(selector)}; cm.focus(); cm.execCommand('selectAll'); }})()"
    )
    await page.type_text(text)
    assert await page.evaluate(f"{editor(selector)}.getValue()") == text


async def response_with(page: Page, needle: str) -> Any:
    """The response pane's JSON once its text contains `needle`."""
    text = await page.wait_for(
        f"(() => {{ const v = {editor(RESPONSE)}.getValue(); "
        f"return v.includes({json.dumps(needle)}) ? v : null; }})()"
    )
    return json.loads(text)


async def set_query(page: Page, query: str) -> None:
    """Type `query` and wait until GraphiQL has parsed it (it picks HTTP or the
    websocket from the parsed document, updated shortly after each edit)."""
    await replace_text(page, QUERY_EDITOR, query)
    await page.wait_for(
        f"{editor(QUERY_EDITOR)}.documentAST?.loc?.source?.body === {json.dumps(query)}"
    )


async def run(page: Page) -> None:
    await page.click(".graphiql-execute-button")


async def test_graphiql_signs_in_queries_and_streams_with_no_request_off_the_machine(
    sse: FakeUpstream, stream_app: StreamApp, database: Database, tmp_path: Path
) -> None:
    key = await ApiKeyStore(database).create(user_id="alice")
    pieces = ["Hel", "lo, ", "world!"]
    # The pane shows the latest event: the fake sends each chunk (and the finish) only
    # once the page has shown the one before.
    gates = [asyncio.Event() for _ in pieces]
    script: list[Text | Wait] = []
    for piece, gate in zip(pieces, gates, strict=True):
        script += [Text(piece), Wait(gate)]
    sse.script(MISTRAL_UPSTREAM, steps(*script, Finish(5, 3)))
    app = await stream_app(AIPASTA_AUTH="required")

    async with chromium(tmp_path) as page:
        loaded = page.next_event("Page.loadEventFired")
        await page.send("Page.navigate", url=f"{app.base_url}/graphql")
        await loaded
        await page.wait_for(f"!!document.querySelector({json.dumps(QUERY_EDITOR)})")

        # Without a key the API refuses: the headers editor is what signs in.
        await set_query(page, USAGE)
        await run(page)
        refused = await response_with(page, "UNAUTHENTICATED")
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        await page.click(".graphiql-editor-tools button:nth-of-type(2)")  # "Headers"
        await replace_text(page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {key.key}"}))
        await set_query(page, USAGE)
        await run(page)
        answered = await response_with(page, "totalRequests")
        assert answered == {"data": {"usage": {"totalRequests": 0}}}

        # The subscription goes over the websocket with the same header; each delta
        # shows on the page as it arrives, and the fake sends the next only then.
        await set_query(page, SUBSCRIPTION)
        await run(page)
        seen = []
        for piece, gate in zip(pieces, gates, strict=True):
            event = await response_with(page, json.dumps(piece))
            seen.append(event["data"]["chatStream"])
            gate.set()
        completed = await response_with(page, "ChatCompleted")
        await page.screenshot(tmp_path / "graphiql.png")

        assert [e["content"] for e in seen] == pieces
        assert [e["index"] for e in seen] == [0, 1, 2]
        assert completed["data"]["chatStream"] == {
            "__typename": "ChatCompleted",
            "content": "Hello, world!",
            "finishReason": "stop",
        }
        assert page.non_loopback() == []
        assert any(url.startswith("ws://127.0.0.1") for url in page.urls)
        assert any("/graphiql/static/graphiql.min.js" in url for url in page.urls)
        assert page.problems == []  # no script error, no Content-Security-Policy refusal
