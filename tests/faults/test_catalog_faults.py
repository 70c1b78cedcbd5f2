"""The catalog never sits on the request path: one provider's `/models` accepts the
request and never answers, the other is healthy. What a client sees must not depend on
the hanging one: every catalog query and every chat on the healthy provider answers at
once, from the first request after start, and again after the lists expire."""

from __future__ import annotations

import time
from typing import Any

from tests.faults.conftest import (
    CHAT,
    MISTRAL_UPSTREAM,
    FaultApp,
    FaultAppFactory,
    chat_input,
)
from tests.support.clocks import FakeClock
from tests.support.fake_upstream import FakeUpstream, answer, hang

CATALOG = """
{
  modelCatalog {
    cached stale fetchedAt stats { byProvider { provider count } }
    providers { provider status modelCount error }
  }
}
"""
OPENROUTER_ONLY = '{ models(filter: {provider: "openrouter"}, first: 200) { totalCount } }'
# A generous sanity bound: before the fix a query here took 30 s and a chat 59 s.
QUICK = 1.0


async def timed(app: FaultApp, query: str, variables: dict[str, Any] | None = None) -> Any:
    started = time.monotonic()
    body = await app.graphql(query, variables)
    elapsed = time.monotonic() - started
    assert elapsed < QUICK, f"{' '.join(query.split()[:3])} took {elapsed:.2f}s"
    assert "errors" not in body, body
    return body["data"]


def statuses(data: dict[str, Any]) -> dict[str, str]:
    return {p["provider"]: p["status"] for p in data["modelCatalog"]["providers"]}


def counts(data: dict[str, Any]) -> dict[str, int]:
    return {p["provider"]: p["count"] for p in data["modelCatalog"]["stats"]["byProvider"]}


async def ask_everything(app: FaultApp) -> dict[str, Any]:
    """A catalog query, a one-provider query and a chat, each answered at once."""
    catalog: dict[str, Any] = await timed(app, CATALOG)
    assert counts(catalog)["openrouter"] == 7
    assert (await timed(app, OPENROUTER_ONLY))["models"]["totalCount"] == 7
    chat = await timed(app, CHAT, chat_input())
    assert chat["chat"]["message"]["content"] == "Hello"
    return catalog


async def test_a_hanging_models_endpoint_never_slows_queries_or_chats_on_the_other(
    fault_app: FaultAppFactory, raw: FakeUpstream
) -> None:
    raw.set("/hf/models", hang())
    raw.default(MISTRAL_UPSTREAM, answer("Hel", "lo"))
    clock = FakeClock()
    app = await fault_app(
        clock=clock,
        AIPASTA_MODELS_TTL_SECONDS=60,
        AIPASTA_MODELS_RETRY_SECONDS=30,
        # One request 0.5 s, a round 1.5 s: short enough to see it end in this test.
        AIPASTA_MODELS_FETCH_TIMEOUT=0.5,
        # The cold-start wait for the first lists, well under the bound asserted.
        AIPASTA_MODELS_COLD_START_WAIT=0.2,
    )

    # From the first request: Hugging Face is still fetching, OpenRouter is served.
    catalog = await ask_everything(app)
    assert statuses(catalog) == {"openrouter": "ok", "huggingface": "loading"}
    assert counts(catalog)["huggingface"] == 0
    assert catalog["modelCatalog"]["cached"] is True
    status, health = await app.get("/health")
    assert status == 200
    assert {p["name"]: p["state"] for p in health["providers"]} == {
        "openrouter": "ok",
        "huggingface": "loading",
    }
    graphql_health = await timed(app, "{ health { providers { name state modelCount } } }")
    assert graphql_health["health"]["providers"] == [
        {"name": "openrouter", "state": "ok", "modelCount": 7},
        {"name": "huggingface", "state": "loading", "modelCount": 0},
    ]
    for _ in range(2):
        assert statuses(await ask_everything(app))["openrouter"] == "ok"

    # Its round ends within its own bound; the client sees why it has no models.
    await app.services.catalog.settled()
    catalog = await ask_everything(app)
    (hf,) = [p for p in catalog["modelCatalog"]["providers"] if p["provider"] == "huggingface"]
    assert (hf["status"], hf["modelCount"]) == ("error", 0)
    assert "within" in hf["error"]
    assert (raw.calls["/openrouter/models"], raw.calls["/hf/models"]) == (1, 3)

    # Past the TTL and the retry window: both are fetched again, in the background.
    clock.advance(61)
    for _ in range(3):
        catalog = await ask_everything(app)
        assert catalog["modelCatalog"]["cached"] is True
    await app.services.catalog.settled()
    catalog = await ask_everything(app)
    assert statuses(catalog) == {"openrouter": "ok", "huggingface": "error"}
    assert catalog["modelCatalog"]["stale"] is False
    assert raw.calls["/openrouter/models"] == 2
    assert raw.calls["/hf/models"] == 6  # asked again once the retry window was over
    assert len(raw.chats_for(MISTRAL_UPSTREAM)) == 3 + 1 + 3 + 1
