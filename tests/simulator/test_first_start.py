"""The first two minutes: with no provider configured, development serves the built-in
simulator as provider `simulator`, and everything the README shows works against it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.streaming.conftest import CHAT, CHAT_STREAM, GraphQLWebSocket, user_says, ws_client
from tests.support.server import RunningApp, StartApp

__all__ = ["ws_client"]  # the fixture, shared with the streaming tests

WsClient = Callable[[RunningApp], Awaitable[GraphQLWebSocket]]
CHAT_MODEL = "simulator:sim/chat"
NO_PROVIDER: dict[str, Any] = {
    "OPENROUTER_API_KEY": None,
    "HUGGINGFACE_API_KEY": None,
    "AIPASTA_SIMULATOR_TOKEN_DELAY_MS": 0,
    "AIPASTA_CHAT_RETRY_BACKOFF": 0,
    "AIPASTA_STREAM_COALESCE_MS": 0,
}
CATALOG = """
{
  modelCatalog {
    all { id provider name free multimodal pricing { promptPerMillion completionPerMillion } }
    providers { provider status }
  }
}
"""
HEALTH = "{ health { status services { simulator openrouter } } }"


def chat_input(content: str = "Say hello", model: str = CHAT_MODEL) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says(content)}}


def closed_port_url(tmp_path: Path) -> str:
    """A loopback URL where nothing listens: an unreachable provider, no internet tried."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


@pytest.mark.parametrize(
    ("env", "overrides", "enabled"),
    [
        pytest.param("development", {}, True, id="dev-auto-no-provider"),
        pytest.param("development", {"OPENROUTER_API_KEY": "sk-or-x"}, False, id="dev-auto-key"),
        pytest.param(
            "development",
            {"AIPASTA_PROVIDERS": [{"name": "ollama", "base_url": "http://127.0.0.1:1/v1"}]},
            False,
            id="dev-auto-extra-provider",
        ),
        pytest.param("development", {"AIPASTA_SIMULATOR": "off"}, False, id="dev-off"),
        pytest.param(
            "development",
            {"AIPASTA_SIMULATOR": "on", "HUGGINGFACE_API_KEY": "hf_x"},
            True,
            id="dev-on-beside-a-key",
        ),
        pytest.param("production", {}, False, id="prod-auto-no-provider"),
        pytest.param("production", {"AIPASTA_SIMULATOR": "off"}, False, id="prod-off"),
        pytest.param("production", {"AIPASTA_SIMULATOR": "on"}, True, id="prod-on"),
    ],
)
def test_when_the_simulator_serves(
    tmp_path: Path, env: str, overrides: dict[str, str], enabled: bool
) -> None:
    settings = make_settings(tmp_path, AIPASTA_ENV=env, **overrides)
    assert settings.simulator_enabled is enabled


async def test_no_provider_in_development_serves_the_labelled_simulator(
    start_app: StartApp, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    unreachable = closed_port_url(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aipasta"):
        app = await start_app(
            **NO_PROVIDER, OPENROUTER_BASE_URL=unreachable, HUGGINGFACE_BASE_URL=unreachable
        )
    started = " ".join(r.getMessage() for r in caplog.records if "SIMULATOR" in r.getMessage())
    assert "provider `simulator`" in started
    assert "OPENROUTER_API_KEY" in started and "AIPASTA_SIMULATOR=off" in started

    catalog = (await app.graphql(CATALOG))["data"]["modelCatalog"]
    simulated = [m for m in catalog["all"] if m["provider"] == "simulator"]
    assert {m["id"] for m in simulated} == {
        "simulator:sim/chat",
        "simulator:sim/chat:free",
        "simulator:sim/vision",
        "simulator:sim/reasoner",
        "simulator:sim/structured",
    }
    assert all("(simulated)" in m["name"] for m in simulated)
    assert {p["provider"]: p["status"] for p in catalog["providers"]}["simulator"] == "ok"

    _, health = await app.get("/health")
    assert health["status"] == "ok"
    assert health["services"]["simulator"] == "configured"
    graphql = await app.graphql(HEALTH)
    assert graphql["data"]["health"]["services"]["simulator"] == "configured"


async def test_chat_with_the_simulator_reports_exact_usage_and_cost(
    start_app: StartApp,
) -> None:
    app = await start_app(**NO_PROVIDER)
    body = await app.graphql(CHAT, chat_input())
    assert "errors" not in body, body
    chat = body["data"]["chat"]

    assert chat["provider"] == "simulator" and chat["model"] == CHAT_MODEL
    assert chat["message"]["content"].startswith("Simulated")
    assert len(chat["message"]["content"].split()) == 50
    # "Say hello": 2 words + 3 per message; 50 tokens back; $0.5 / $1.5 per million.
    assert chat["usage"] == {
        "promptTokens": 5,
        "completionTokens": 50,
        "totalTokens": 55,
        "estimated": False,
    }
    assert Decimal(str(chat["cost"]["totalCost"])) == Decimal("0.0000775")
    assert chat["cost"]["known"] is True


async def test_chat_stream_with_the_simulator(start_app: StartApp, ws_client: WsClient) -> None:
    app = await start_app(**NO_PROVIDER)
    ws = await ws_client(app)
    outcome = await ws.run(CHAT_STREAM, chat_input())

    assert outcome.completed and outcome.errors == []
    (completed,) = outcome.terminals
    assert completed["__typename"] == "ChatCompleted"
    assert completed["content"] == "".join(d["content"] for d in outcome.deltas)
    assert len(completed["content"].split()) == 50
    assert completed["usage"]["completionTokens"] == 50
    assert Decimal(str(completed["cost"]["totalCost"])) == Decimal("0.0000775")


async def test_a_429_with_retry_after_is_retried_by_the_gateway(start_app: StartApp) -> None:
    app = await start_app(**NO_PROVIDER, AIPASTA_CHAT_RETRY_MAX_WAIT=0)
    body = await app.graphql(CHAT, chat_input("Hello [simulate error=429 times=1]"))
    assert "errors" not in body, body
    assert body["data"]["chat"]["message"]["content"].startswith("Simulated")

    refused = await app.graphql(CHAT, chat_input("Hello [simulate error=429 retry-after=7]"))
    (error,) = refused["errors"]
    assert error["extensions"]["code"] == "PROVIDER_RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == 7


async def test_an_in_band_error_mid_stream_fails_with_the_partial_answer(
    start_app: StartApp, ws_client: WsClient
) -> None:
    app = await start_app(**NO_PROVIDER)
    ws = await ws_client(app)
    outcome = await ws.run(CHAT_STREAM, chat_input("Hi [simulate error=midstream after=4]"))

    assert outcome.completed and outcome.errors == []
    shown = "".join(d["content"] for d in outcome.deltas)
    assert len(shown.split()) == 4
    (failed,) = outcome.terminals
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_UNAVAILABLE"
    assert failed["partialContent"] == shown
    assert "Provider disconnected unexpectedly" in failed["message"]


async def test_model_of_an_unreachable_provider_is_not_found_with_its_status(
    start_app: StartApp, tmp_path: Path
) -> None:
    unreachable = closed_port_url(tmp_path)
    app = await start_app(
        **NO_PROVIDER, OPENROUTER_BASE_URL=unreachable, HUGGINGFACE_BASE_URL=unreachable
    )
    body = await app.graphql(CHAT, chat_input(model="openrouter:openai/gpt-4o-mini"))
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "MODEL_NOT_FOUND"
    assert "openrouter" in error["message"] and "could not be fetched" in error["message"]
    (provider,) = error["extensions"]["details"]["providers"]
    assert provider["provider"] == "openrouter" and provider["status"] == "error"
    assert provider["error"]

    # A bare id could be any provider's: each one without a model list is named.
    bare = (await app.graphql(CHAT, chat_input(model="openai/gpt-4o-mini")))["errors"][0]
    named = {p["provider"] for p in bare["extensions"]["details"]["providers"]}
    assert named == {"openrouter", "huggingface"}

    # A provider that answered: the model simply is not there.
    missing = (await app.graphql(CHAT, chat_input(model="simulator:sim/nothing")))["errors"][0]
    assert missing["extensions"]["code"] == "MODEL_NOT_FOUND"
    assert missing["extensions"]["details"] == {"field": "input.model"}


async def test_production_without_providers_serves_no_simulator(start_app: StartApp) -> None:
    app = await start_app(**NO_PROVIDER, AIPASTA_ENV="production")
    catalog = (await app.graphql(CATALOG))["data"]["modelCatalog"]
    assert "simulator" not in {p["provider"] for p in catalog["providers"]}
    _, health = await app.get("/health")
    assert "simulator" not in health["services"]

    on = await start_app(**NO_PROVIDER, AIPASTA_ENV="production", AIPASTA_SIMULATOR="on")
    body = await on.graphql(CHAT, chat_input())
    assert body["data"]["chat"]["provider"] == "simulator"
