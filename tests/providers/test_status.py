"""Upstream failures become the right typed error, with a safe, useful message."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from providers.errors import (
    ContentFiltered,
    InsufficientCredits,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    UpstreamModelNotFound,
    error_from_payload,
    error_from_response,
    parse_retry_after,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
OPENROUTER_KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
HF_KEY = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def openrouter_body(code: int, message: str, **metadata: object) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if metadata:
        error["metadata"] = metadata
    return json.dumps({"error": error}).encode()


# --- Retry-After ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Sat, 01 Mar 2025 12:00:30 GMT", 30.0),
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # already past: retry now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_defaults_to_the_current_time() -> None:
    far_future = "Fri, 01 Jan 2100 00:00:00 GMT"
    seconds = parse_retry_after(far_future)

    assert seconds is not None
    assert seconds > 365 * 24 * 3600


# --- status mapping ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ProviderBadRequest),
        (401, ProviderAuthError),
        (402, InsufficientCredits),
        (403, ProviderAuthError),
        (404, UpstreamModelNotFound),
        (408, ProviderTimeout),
        (409, ProviderError),
        (418, ProviderError),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderTimeout),
        (302, ProviderProtocolError),
    ],
)
def test_status_maps_to_error_class(status: int, expected: type[ProviderError]) -> None:
    error = error_from_response("openrouter", status, openrouter_body(status, "nope"), {})

    assert type(error) is expected
    assert error.status == status
    assert error.provider == "openrouter"


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_names_the_provider_and_leaks_nothing(status: int) -> None:
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {OPENROUTER_KEY}", "code": status}}
    ).encode()
    headers = {"Authorization": f"Bearer {OPENROUTER_KEY}", "WWW-Authenticate": "Bearer"}

    error = error_from_response("openrouter", status, body, headers)

    assert isinstance(error, ProviderAuthError)
    assert "API key for openrouter was refused" in str(error)
    assert OPENROUTER_KEY not in str(error)
    assert OPENROUTER_KEY[10:30] not in repr(error.args)


def test_openrouter_moderation_403_is_content_filtered_with_reasons() -> None:
    body = openrouter_body(
        403,
        "Your chosen model requires moderation and your input was flagged",
        reasons=["harassment", "violence"],
        flagged_input="something nasty",
        provider_name="OpenAI",
        model_slug="openai/gpt-4o",
    )

    error = error_from_response("openrouter", 403, body, {})

    assert isinstance(error, ContentFiltered)
    assert "harassment, violence" in error.message
    assert "something nasty" not in error.message


def test_403_mentioning_moderation_without_metadata_is_content_filtered() -> None:
    body = b'{"error": {"message": "Input flagged by moderation", "code": 403}}'

    error = error_from_response("openrouter", 403, body, {})

    assert isinstance(error, ContentFiltered)
    assert error.message.endswith("flagged the request: Input flagged by moderation")


def test_429_takes_retry_after_from_headers_whatever_their_case() -> None:
    body = openrouter_body(429, "Rate limit exceeded: free-models-per-min")

    error = error_from_response("openrouter", 429, body, {"retry-after": "12"})

    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 12.0
    assert error.retryable
    assert "free-models-per-min" in error.message


def test_503_keeps_retry_after_too() -> None:
    error = error_from_response("huggingface", 503, b"", {"Retry-After": "30"})

    assert isinstance(error, ProviderUnavailable)
    assert error.retry_after == 30.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": "Model is currently loading"}', "Model is currently loading"),
        (b'{"error": {"message": "Input too long", "type": "invalid"}}', "Input too long"),
        (b'{"message": "Bad temperature"}', "Bad temperature"),
        (b'{"detail": "Not allowed"}', "Not allowed"),
        (
            b'{"detail": [{"loc": ["body", "model"], "msg": "field required"},'
            b' {"loc": ["body"], "msg": "bad value"}]}',
            "field required; bad value",
        ),
        (b"upstream connect error", "upstream connect error"),
        (
            b"<html><head><title>502 Bad Gateway</title><style>body{}</style></head>"
            b"<body><h1>nginx</h1></body></html>",
            "502 Bad Gateway",
        ),
    ],
)
def test_upstream_message_is_extracted_from_every_body_shape(body: bytes, expected: str) -> None:
    error = error_from_response("huggingface", 400, body, {})

    assert error.message == f"the upstream rejected the request: {expected}"


def test_html_body_contributes_only_its_title() -> None:
    body = b"<html><body><script>var token = 1;</script>oops</body></html>"

    error = error_from_response("huggingface", 502, body, {})

    assert error.message == "the upstream is unavailable (HTTP 502)"


def test_openrouter_names_the_provider_behind_a_generic_message() -> None:
    body = openrouter_body(502, "Provider returned error", provider_name="Together")

    assert (
        "Provider returned error (via Together)"
        in error_from_response("openrouter", 502, body, {}).message
    )


def test_credentials_in_upstream_text_are_redacted() -> None:
    text = (
        f"bad header Authorization: Bearer {OPENROUTER_KEY} and token {HF_KEY}"
        " and api_key=abc123secret456"
    )
    error = error_from_response("huggingface", 400, json.dumps({"error": text}).encode(), {})

    for secret in (OPENROUTER_KEY, HF_KEY, "abc123secret456"):
        assert secret not in str(error)
    assert "[redacted]" in error.message


def test_long_upstream_text_is_truncated() -> None:
    body = json.dumps({"error": {"message": "word " * 10_000}}).encode()

    error = error_from_response("openrouter", 400, body, {})

    assert len(error.message) <= 340
    assert error.message.endswith("…")


def test_empty_body_gives_a_plain_summary() -> None:
    error = error_from_response("openrouter", 404, b"", {})

    assert error.message == "the upstream does not know this model"


# --- in-stream errors ------------------------------------------------------------


def midstream(code: object, message: str = "boom") -> dict[str, object]:
    return {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "error": {"code": code, "message": message},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }


@pytest.mark.parametrize(
    ("code", "expected", "status"),
    [
        (429, ProviderRateLimited, 429),
        ("502", ProviderUnavailable, 502),
        (400, ProviderBadRequest, 400),
        (504, ProviderTimeout, 504),
        ("server_error", ProviderUnavailable, None),
        (None, ProviderUnavailable, None),
    ],
)
def test_in_stream_error_code_acts_like_a_status(
    code: object, expected: type[ProviderError], status: int | None
) -> None:
    error = error_from_payload("openrouter", midstream(code, "Provider disconnected"))

    assert type(error) is expected
    assert error.status == status
    assert "Provider disconnected" in error.message


def test_in_stream_error_as_plain_string() -> None:
    error = error_from_payload("huggingface", {"error": "Model overloaded"})

    assert isinstance(error, ProviderUnavailable)
    assert error.message == "the upstream failed while answering: Model overloaded"


def test_in_stream_error_text_is_redacted() -> None:
    error = error_from_payload("openrouter", midstream(500, f"key {OPENROUTER_KEY} failed"))

    assert OPENROUTER_KEY not in str(error)
