"""No configured secret reaches a client or a log, whatever it looks like: upstreams
that echo a key in a 400 body, a 500 body or an in-band stream error, and exceptions
whose message holds one, are all redacted by value (on top of the pattern rules)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from aipasta.redactor import build_redactor
from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.security.test_websocket_credentials import open_signed_in
from tests.signin.conftest import JWT_SECRET, NEXTAUTH_SECRET
from tests.streaming.conftest import (
    CHAT,
    CHAT_STREAM,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    StreamApp,
    user_says,
)
from tests.support.fake_upstream import FakeUpstream, StreamError, Text, http_error, steps
from tests.support.server import RunningApp

# None of these looks like a credential to the pattern rules.
EXTRA_KEY = "local-llm-key-Zq81mXw7pLr3"
SECRETS = {
    "extra provider key": EXTRA_KEY,
    "AIPASTA_JWT_SECRET": JWT_SECRET,
    "NEXTAUTH_SECRET": NEXTAUTH_SECRET,
    "OPENROUTER_API_KEY": "or-key-without-the-usual-prefix-81x",
}
EXTRA_MODEL = f"local:{MISTRAL_UPSTREAM}"


@pytest.fixture
def configured_app(
    sse: FakeUpstream, stream_app: StreamApp, monkeypatch: pytest.MonkeyPatch
) -> StreamApp:
    """The gateway with every secret above configured, and an extra provider `local`
    (the fake's OpenRouter catalog) whose key comes from `api_key_env`."""
    monkeypatch.setenv("LOCAL_LLM_KEY", EXTRA_KEY)

    async def start(**overrides: Any) -> RunningApp:
        return await stream_app(
            AIPASTA_PROVIDERS=(
                [
                    {
                        "name": "local",
                        "base_url": sse.url("openrouter"),
                        "api_key_env": "LOCAL_LLM_KEY",
                    }
                ]
            ),
            AIPASTA_JWT_SECRET=JWT_SECRET,
            NEXTAUTH_SECRET=NEXTAUTH_SECRET,
            OPENROUTER_API_KEY=SECRETS["OPENROUTER_API_KEY"],
            AIPASTA_LOG_LEVEL="DEBUG",
            **overrides,
        )

    return start


def chat_variables(model: str = EXTRA_MODEL) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says("Say hello")}}


def assert_nowhere(secret: str, answer: object, caplog: pytest.LogCaptureFixture) -> None:
    assert secret not in json.dumps(answer)
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
@pytest.mark.parametrize(
    ("status", "code"), [(400, "BAD_USER_INPUT"), (500, "PROVIDER_UNAVAILABLE")]
)
async def test_a_secret_echoed_in_an_upstream_error_body_is_redacted(
    secret: str,
    status: int,
    code: str,
    sse: FakeUpstream,
    configured_app: StreamApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sse.default(MISTRAL_UPSTREAM, http_error(status, f"Invalid credentials: {secret} (sent)"))
    app = await configured_app()

    body = await app.graphql(CHAT, chat_variables())

    (error,) = body["errors"]
    assert error["extensions"]["code"] == code
    # The upstream's sentence still helps; only the secret is gone.
    assert "Invalid credentials: [redacted] (sent)" in error["message"]
    assert_nowhere(secret, body, caplog)


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
async def test_a_secret_echoed_in_an_in_band_stream_error_is_redacted(
    secret: str,
    sse: FakeUpstream,
    configured_app: StreamApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sse.default(
        MISTRAL_UPSTREAM, steps(Text("Partial"), StreamError(502, f"provider said {secret}"))
    )
    app = await configured_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        outcome = await ws.run(CHAT_STREAM, chat_variables())
    finally:
        await ws.close()

    (failed,) = outcome.terminals
    assert failed["__typename"] == "ChatFailed"
    assert "provider said [redacted]" in failed["message"]
    assert failed["partialContent"] == "Partial"
    assert_nowhere(secret, outcome.events, caplog)


@pytest.mark.parametrize("secret", SECRETS.values(), ids=SECRETS.keys())
async def test_a_secret_in_an_exception_message_stays_out_of_the_log(
    secret: str,
    configured_app: StreamApp,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def exploding(services: object) -> None:
        raise RuntimeError(f"could not reach the store with {secret}")

    monkeypatch.setattr("resolvers.monitoring.health.health_report", exploding)
    app = await configured_app()

    body = await app.graphql("{ health { status } }")

    (error,) = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    # The traceback is logged, with the message, minus the secret.
    assert "RuntimeError: could not reach the store with [redacted]" in caplog.text
    assert_nowhere(secret, body, caplog)


async def test_the_database_password_stays_out_of_answers_and_the_log(
    configured_app: StreamApp,
    mongo_uri: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "db-Pw-7731-zq"

    async def exploding(services: object) -> None:
        raise RuntimeError(f"login failed with password {password}")

    monkeypatch.setattr("resolvers.monitoring.health.health_report", exploding)
    # The embedded server has no such user: the gateway runs without its database.
    with_password = mongo_uri.replace("mongodb://", f"mongodb://gateway:{password}@", 1)
    app = await configured_app(MONGODB_URI=with_password)

    body = await app.graphql("{ health { status } }")

    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert "login failed with password [redacted]" in caplog.text
    assert_nowhere(password, body, caplog)


async def test_the_requests_own_bearer_token_is_redacted_from_what_echoes_it(
    configured_app: StreamApp, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    created = await ApiKeyStore(database).create(user_id="alice")
    app = await configured_app(AIPASTA_AUTH="required")
    headers = {"Authorization": f"Bearer {created.key}"}

    # graphql-core quotes an invalid variable value back in its message.
    body = await app.graphql(CHAT, {"input": created.key}, headers=headers)

    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "[redacted]" in error["message"]
    assert_nowhere(created.key, body, caplog)

    # Over a websocket too, for the connection's credential.
    ws = await open_signed_in(app, created.key)
    try:
        outcome = await ws.run(CHAT_STREAM, {"input": created.key})
    finally:
        await ws.close()
    assert outcome.errors and "[redacted]" in outcome.errors[0]["message"]
    assert_nowhere(created.key, outcome.errors, caplog)


def test_the_database_password_is_known_as_written_and_decoded(tmp_path: Any) -> None:
    settings = make_settings(
        tmp_path, MONGODB_URI="mongodb://gateway:p%40ss-W0rd-91@db.internal:27017/app"
    )
    redactor = build_redactor(settings)
    text = "auth failed for gateway:p%40ss-W0rd-91 (password p@ss-W0rd-91)"
    assert redactor.redact(text) == "auth failed for gateway:[redacted] (password [redacted])"


def test_the_sign_in_hint_keeps_its_placeholder_while_real_tokens_are_redacted() -> None:
    """The gateway's own "send `Authorization: Bearer <token>`" hint used to reach the
    client as "Bearer [redacted]", which tells a new user nothing."""
    from providers.redaction import Redactor

    redactor = Redactor()
    hint = "sign in: send `Authorization: Bearer <token>`"
    assert redactor.redact(hint) == hint
    assert redactor.redact("send `Authorization: Bearer <AIPASTA_METRICS_TOKEN>`").endswith(
        "Bearer <AIPASTA_METRICS_TOKEN>`"
    )
    assert redactor.redact("Authorization: Bearer aip_live_0123456789") == (
        "Authorization: Bearer [redacted]"
    )
    assert redactor.redact("authorization=abc123def") == "authorization=[redacted]"
    assert "s3cr3t" not in redactor.redact("Bearer <b>s3cr3t")
