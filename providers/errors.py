"""Errors raised by the provider clients.

Every failure talking to an upstream becomes one of these; nothing else escapes the
providers layer. Each class carries the public error `code` the API reports for it,
so the layers above map errors without knowing HTTP.

    ProviderError
    ├── ProviderBadRequest        400: the upstream rejected the request itself
    ├── ProviderAuthError         401/403: the server's API key was refused
    ├── InsufficientCredits       402: the account behind the key is out of credit
    ├── ContentFiltered           403 moderation / content policy
    ├── UpstreamModelNotFound     404: no such model upstream
    ├── ProviderTimeout           408/504, connect / first-token / idle timeouts
    │   └── PoolExhausted         no connection of the gateway's own pool came free in time
    ├── ProviderRateLimited       429, with retry_after when the upstream said
    ├── ProviderUnavailable       5xx, connection refused or reset
    └── ProviderProtocolError     a 2xx answer we cannot understand (bad JSON, bad shape)

Messages never contain API keys or request bodies: they are shown to API clients.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every upstream failure."""

    code = "PROVIDER_ERROR"
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
    code = "BAD_USER_INPUT"


class ProviderAuthError(ProviderError):
    code = "PROVIDER_ERROR"


class InsufficientCredits(ProviderError):
    code = "INSUFFICIENT_CREDITS"


class ContentFiltered(ProviderError):
    code = "CONTENT_FILTERED"


class UpstreamModelNotFound(ProviderError):
    code = "MODEL_NOT_FOUND"


class ProviderTimeout(ProviderError):
    code = "PROVIDER_TIMEOUT"
    retryable = True


class PoolExhausted(ProviderTimeout):
    """The upstream was never asked: every pooled connection was busy for too long."""


class ProviderRateLimited(ProviderError):
    code = "PROVIDER_RATE_LIMITED"
    retryable = True


class ProviderUnavailable(ProviderError):
    code = "PROVIDER_UNAVAILABLE"
    retryable = True


class ProviderProtocolError(ProviderError):
    code = "PROVIDER_ERROR"
