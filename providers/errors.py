"""Errors raised by the provider clients, and how an upstream's failed answer becomes one.

Every failure talking to an upstream becomes one of these; nothing else escapes the
providers layer. Each class carries its `kind`, a `FailureKind` of this layer (the public
`ErrorCode` for each kind is chosen above, in one table: resolvers.errors), so the layers
above map errors without knowing HTTP.

    ProviderError                 FAILED: any other 4xx, or a source that listed nothing
    ├── ProviderBadRequest        BAD_REQUEST, 400: the upstream rejected the request itself
    ├── ProviderAuthError         KEY_REFUSED, 401/403: the server's API key was refused
    ├── InsufficientCredits       INSUFFICIENT_CREDITS, 402: the account is out of credit
    ├── ContentFiltered           CONTENT_FILTERED, 403 moderation / content policy
    ├── UpstreamModelNotFound     MODEL_NOT_FOUND, 404: no such model upstream
    ├── ProviderTimeout           TIMEOUT, 408/504, connect / first-token / idle timeouts
    │   └── PoolExhausted         no connection of the gateway's own pool came free in time
    ├── ProviderRateLimited       RATE_LIMITED, 429, with retry_after when the upstream said
    ├── ProviderUnavailable       UNAVAILABLE, 5xx, connection refused or reset
    └── ProviderProtocolError     BAD_ANSWER: a 2xx answer we cannot understand (bad JSON, shape)

Upstreams disagree on the shape of an error body (OpenRouter nests a code and metadata
under "error", Hugging Face uses "error", "message" or FastAPI's "detail", proxies
answer in HTML), so `error_from_response` / `error_from_payload` dig out one human
sentence and map the status code.

Messages never contain API keys or request bodies: they are shown to API clients. The
upstream's text is truncated and anything that looks like a credential is redacted
first, because some upstreams echo (part of) the key they refused.
"""

from __future__ import annotations

import email.utils
import enum
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from providers.redaction import redact_patterns


class FailureKind(enum.Enum):
    """What went wrong upstream, as this layer tells it (see the hierarchy above)."""

    FAILED = "failed"
    BAD_REQUEST = "bad_request"
    KEY_REFUSED = "key_refused"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    CONTENT_FILTERED = "content_filtered"
    MODEL_NOT_FOUND = "model_not_found"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    BAD_ANSWER = "bad_answer"


class ProviderError(Exception):
    """Base of every upstream failure."""

    kind = FailureKind.FAILED
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.provider}: {self.message}"


class ProviderBadRequest(ProviderError):
    kind = FailureKind.BAD_REQUEST


class ProviderAuthError(ProviderError):
    kind = FailureKind.KEY_REFUSED


class InsufficientCredits(ProviderError):
    kind = FailureKind.INSUFFICIENT_CREDITS


class ContentFiltered(ProviderError):
    kind = FailureKind.CONTENT_FILTERED


class UpstreamModelNotFound(ProviderError):
    kind = FailureKind.MODEL_NOT_FOUND


class ProviderTimeout(ProviderError):
    kind = FailureKind.TIMEOUT
    retryable = True


class PoolExhausted(ProviderTimeout):
    """The upstream was never asked: every pooled connection was busy for too long."""


class ProviderRateLimited(ProviderError):
    kind = FailureKind.RATE_LIMITED
    retryable = True


class ProviderUnavailable(ProviderError):
    kind = FailureKind.UNAVAILABLE
    retryable = True


class ProviderProtocolError(ProviderError):
    kind = FailureKind.BAD_ANSWER


MAX_DETAIL_CHARS = 300

_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MODERATION_WORDS = ("moderation", "flagged")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP-date).

    A date already in the past means "retry now" and gives 0.0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    return max(0.0, (when - current).total_seconds())


def error_from_response(
    provider: str, status: int, body: bytes, headers: Mapping[str, str]
) -> ProviderError:
    """The error for a non-2xx upstream answer."""
    message, metadata = _describe_body(body)
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    return _classify(provider, status, message, metadata, retry_after)


def error_from_payload(provider: str, payload: Mapping[str, object]) -> ProviderError:
    """The error for an `error` object sent inside a 200 stream (or JSON answer)."""
    message, metadata = _describe_json(payload)
    error = payload.get("error")
    status = _status_code(error.get("code")) if isinstance(error, Mapping) else None
    if status is not None and 400 <= status <= 599:
        return _classify(provider, status, message, metadata, None)
    return ProviderUnavailable(
        _with_detail("the upstream failed while answering", message),
        provider=provider,
        status=status,
    )


def _classify(
    provider: str,
    status: int,
    message: str | None,
    metadata: Mapping[str, object],
    retry_after: float | None,
) -> ProviderError:
    def build(
        cls: type[ProviderError], summary: str, detail: str | None = message
    ) -> ProviderError:
        return cls(
            _with_detail(summary, detail),
            provider=provider,
            status=status,
            retry_after=retry_after,
        )

    if status == 403 and _is_moderation(message, metadata):
        return build(
            ContentFiltered,
            "the upstream's content moderation flagged the request",
            _reasons(metadata) or message,
        )
    if status in (401, 403):
        # The upstream's wording is dropped on purpose: it is where keys get echoed.
        summary = f"the server's API key for {provider} was refused"
        if status == 403:
            summary += " (not permitted for this request)"
        return build(ProviderAuthError, summary, None)
    if status == 400:
        return build(ProviderBadRequest, "the upstream rejected the request")
    if status == 402:
        return build(InsufficientCredits, "the upstream account has insufficient credits")
    if status == 404:
        return build(UpstreamModelNotFound, "the upstream does not know this model")
    if status in (408, 504):
        return build(ProviderTimeout, "the upstream timed out")
    if status == 429:
        return build(ProviderRateLimited, "the upstream is rate limiting requests")
    if 500 <= status <= 599:
        return build(ProviderUnavailable, f"the upstream is unavailable (HTTP {status})")
    if 400 <= status <= 499:
        return build(ProviderError, f"the upstream refused the request (HTTP {status})")
    return build(ProviderProtocolError, f"the upstream answered with unexpected HTTP {status}")


def _with_detail(summary: str, detail: str | None) -> str:
    cleaned = sanitize_detail(detail) if detail else ""
    return f"{summary}: {cleaned}" if cleaned else summary


def sanitize_detail(text: str) -> str:
    """Upstream text made safe to show: credentials redacted, one line, truncated."""
    text = " ".join(redact_patterns(text).split())
    if len(text) > MAX_DETAIL_CHARS:
        text = text[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
    return text


def _describe_body(body: bytes) -> tuple[str | None, Mapping[str, object]]:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, {}
    if text[0] in '{["':
        try:
            document = json.loads(text)
        except ValueError:
            pass
        else:
            return _describe_json(document)
    if text.startswith("<"):
        # An HTML error page (a proxy or load balancer): only its title is readable.
        title = _HTML_TITLE.search(text)
        return (html.unescape(title.group(1)) if title else None), {}
    return text, {}


def _describe_json(document: object) -> tuple[str | None, Mapping[str, object]]:
    if isinstance(document, Mapping):
        error = document.get("error")
        if isinstance(error, Mapping):
            raw_metadata = error.get("metadata")
            metadata: Mapping[str, object] = (
                raw_metadata if isinstance(raw_metadata, Mapping) else {}
            )
            message = _text(error.get("message"))
            provider_name = metadata.get("provider_name")
            if message and isinstance(provider_name, str) and provider_name:
                # OpenRouter's "Provider returned error" says little without the name.
                message = f"{message} (via {provider_name})"
            if message:
                return message, metadata
            if metadata:
                return None, metadata
        else:
            message = _text(error)
            if message:
                return message, {}
        for key in ("message", "detail", "error_description"):
            message = _text(document.get(key))
            if message:
                return message, {}
        return None, {}
    return _text(document), {}


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        # FastAPI-style validation errors: a list of {"loc": ..., "msg": ...}.
        parts = [part for part in (_text_item(item) for item in value) if part]
        return "; ".join(parts) or None
    return None


def _text_item(item: object) -> str | None:
    if isinstance(item, Mapping):
        return _text(item.get("msg")) or _text(item.get("message"))
    return _text(item)


def _is_moderation(message: str | None, metadata: Mapping[str, object]) -> bool:
    if "reasons" in metadata or "flagged_input" in metadata:
        return True
    lowered = (message or "").lower()
    return any(word in lowered for word in _MODERATION_WORDS)


def _reasons(metadata: Mapping[str, object]) -> str | None:
    reasons = metadata.get("reasons")
    if isinstance(reasons, list):
        names = [reason for reason in reasons if isinstance(reason, str)]
        if names:
            return ", ".join(names)
    return None


def _status_code(code: object) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.isascii() and code.isdigit():
        return int(code)
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None
