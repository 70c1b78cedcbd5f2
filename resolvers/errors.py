"""Errors the API reports to clients, each with its public `ErrorCode`.

    GatewayError                 (extensions.code = its code)
    ├── BadUserInput             BAD_USER_INPUT, names the offending field
    ├── Unauthenticated          UNAUTHENTICATED
    ├── Forbidden                FORBIDDEN
    ├── NotFound                 NOT_FOUND
    ├── ModelNotFound            MODEL_NOT_FOUND
    ├── DatabaseUnavailableError DATABASE_UNAVAILABLE
    ├── DatabaseTimeoutError     TIMEOUT, one MongoDB operation past AIPASTA_DB_OPERATION_TIMEOUT_MS
    └── UpstreamFailure          one of the PROVIDER_* codes (from a ProviderError)

Lower layers raise their own errors (providers.errors, documents.errors);
`to_gateway_error` translates them. graphql-core copies an exception's `extensions`
onto the GraphQL error, which is how the code reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from documents.errors import DatabaseTimeout, DatabaseUnavailable
from providers.errors import ProviderAuthError, ProviderError
from schema.types.enums import ErrorCode

# A dependency of the gateway failed, rather than the client asking for something wrong:
# worth a WARNING in the log; other client errors are INFO.
DEPENDENCY_FAILED = frozenset(
    code.value
    for code in (
        ErrorCode.DATABASE_UNAVAILABLE,
        ErrorCode.PROVIDER_ERROR,
        ErrorCode.PROVIDER_UNAVAILABLE,
        ErrorCode.PROVIDER_TIMEOUT,
        ErrorCode.PROVIDER_RATE_LIMITED,
        ErrorCode.INSUFFICIENT_CREDITS,
    )
)


def log_level(code: str) -> int:
    """The level of the one log line about a client error with this code."""
    return logging.WARNING if code in DEPENDENCY_FAILED else logging.INFO


DATABASE_TIMEOUT_REASON = "DATABASE_TIMEOUT"


class GatewayError(Exception):
    code = ErrorCode.INTERNAL
    retryable = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after: float | None = None

    @property
    def extensions(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code.value}
        if self.details:
            extensions["details"] = self.details
        if self.retry_after is not None:
            extensions["retryAfter"] = self.retry_after
        return extensions


class BadUserInput(GatewayError):
    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, details={"field": field} if field else None)


class Unauthenticated(GatewayError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(GatewayError):
    code = ErrorCode.FORBIDDEN


class NotFound(GatewayError):
    code = ErrorCode.NOT_FOUND


class ModelNotFound(GatewayError):
    code = ErrorCode.MODEL_NOT_FOUND


class DatabaseUnavailableError(GatewayError):
    code = ErrorCode.DATABASE_UNAVAILABLE
    retryable = True


class DatabaseTimeoutError(GatewayError):
    """The database is up but this operation took too long (the gateway's own limit)."""

    code = ErrorCode.TIMEOUT
    retryable = True

    def __init__(self, error: DatabaseTimeout) -> None:
        super().__init__(
            error.message,
            details={"reason": DATABASE_TIMEOUT_REASON, "timeoutSeconds": error.seconds},
        )


class UpstreamFailure(GatewayError):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.code = ErrorCode(error.code)
        self.retryable = error.retryable
        self.retry_after = error.retry_after
        self.provider = error.provider
        # For metrics and health: the upstream's HTTP status, and whether it refused our key.
        self.status = error.status
        self.key_refused = isinstance(error, ProviderAuthError)


def to_gateway_error(exc: BaseException) -> GatewayError | None:
    """The public form of a known error; None for anything that must be masked."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, ProviderError):
        return UpstreamFailure(exc)
    if isinstance(exc, DatabaseTimeout):
        return DatabaseTimeoutError(exc)
    if isinstance(exc, DatabaseUnavailable):
        return DatabaseUnavailableError(exc.message)
    return None
