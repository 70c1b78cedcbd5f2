"""Errors of the resolvers: what the API reports to clients, and why a credential was refused.

    Exception
    ├── GatewayError                 a client's answer: extensions.code = its ErrorCode
    │   ├── BadUserInput             BAD_USER_INPUT, names the offending field
    │   ├── Unauthenticated          UNAUTHENTICATED
    │   ├── Forbidden                FORBIDDEN
    │   ├── NotFound                 NOT_FOUND
    │   ├── ModelNotFound            MODEL_NOT_FOUND
    │   ├── RateLimited              RATE_LIMITED, with retryAfter, limit and remaining
    │   ├── StoreUnavailable         SERVICE_UNAVAILABLE: the rate limiter's store is down
    │   │                            and AIPASTA_RATE_LIMIT_FAIL=closed
    │   ├── OperationTimedOut        TIMEOUT, the operation ran past operation_timeout
    │   ├── DatabaseUnavailableError DATABASE_UNAVAILABLE
    │   ├── DatabaseTimeoutError     TIMEOUT, one MongoDB operation ran past
    │   │                            AIPASTA_DB_OPERATION_TIMEOUT_MS
    │   └── UpstreamFailure          the code PROVIDER_CODES gives a ProviderError's kind
    ├── CredentialError              a credential was refused: answer "unauthenticated"
    │   ├── MalformedCredential      not shaped like any credential we accept
    │   ├── ExpiredCredential        well-formed and authentic, but past its expiry
    │   ├── InvalidCredential        bad signature, wrong secret/audience/issuer/algorithm,
    │   │                            tampered, or required claims (sub, exp) missing
    │   └── RevokedCredential        authentic, but its owner withdrew it (a deleted API key)
    ├── StoreConfigError             AIPASTA_RATE_LIMIT_STORAGE cannot be used (at start-up)
    └── ValueError
        └── KeyInputError            a user id, key name or key prefix that cannot be used

Lower layers raise their own errors (providers.errors, documents.errors);
`to_gateway_error` translates them. graphql-core copies an exception's `extensions`
onto the GraphQL error, which is how the code reaches the client (schema.errors renders
every error answer).

The message of every CredentialError is meant to reach the client, so it names only the
reason: never the token, the secret, or anything decoded from the token. Detail for the
operator travels in the chained `__cause__`, which goes to logs, not to responses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from documents.errors import DatabaseTimeout, DatabaseUnavailable
from providers.errors import FailureKind, ProviderError
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


# The public code of each kind of upstream failure: the one place they are mapped.
PROVIDER_CODES: Mapping[FailureKind, ErrorCode] = MappingProxyType(
    {
        FailureKind.FAILED: ErrorCode.PROVIDER_ERROR,
        FailureKind.BAD_REQUEST: ErrorCode.BAD_USER_INPUT,
        FailureKind.KEY_REFUSED: ErrorCode.PROVIDER_ERROR,
        FailureKind.INSUFFICIENT_CREDITS: ErrorCode.INSUFFICIENT_CREDITS,
        FailureKind.CONTENT_FILTERED: ErrorCode.CONTENT_FILTERED,
        FailureKind.MODEL_NOT_FOUND: ErrorCode.MODEL_NOT_FOUND,
        FailureKind.TIMEOUT: ErrorCode.PROVIDER_TIMEOUT,
        FailureKind.RATE_LIMITED: ErrorCode.PROVIDER_RATE_LIMITED,
        FailureKind.UNAVAILABLE: ErrorCode.PROVIDER_UNAVAILABLE,
        FailureKind.BAD_ANSWER: ErrorCode.PROVIDER_ERROR,
    }
)

DATABASE_TIMEOUT_REASON = "DATABASE_TIMEOUT"
TIMEOUT_REASON = "TIMEOUT"
# A request refused because the rate limiter's store is down is told to come back after
# this long: the store is retried at every request, so it is back as soon as it answers.
STORE_UNAVAILABLE_RETRY_SECONDS = 5


def whole_seconds(seconds: float) -> int:
    """Retry-After as HTTP sends it: whole seconds, never 0 (0 invites an instant retry)."""
    return max(1, math.ceil(seconds))


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


class RateLimited(GatewayError):
    code = ErrorCode.RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, retry_after: float, limit: int, remaining: int = 0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining

    @property
    def retry_after_seconds(self) -> int:
        return whole_seconds(self.retry_after or 0.0)

    @property
    def extensions(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "retryAfter": self.retry_after_seconds,
            "limit": self.limit,
            "remaining": self.remaining,
        }


class StoreUnavailable(GatewayError):
    """The rate limiter's store cannot be reached and `AIPASTA_RATE_LIMIT_FAIL=closed`."""

    code = ErrorCode.SERVICE_UNAVAILABLE
    retryable = True

    def __init__(self) -> None:
        super().__init__(
            "The rate limiter's store is unreachable, so requests are refused for now; "
            f"retry in {STORE_UNAVAILABLE_RETRY_SECONDS} s",
            details={"dependency": "rateLimitStore"},
        )
        self.retry_after = STORE_UNAVAILABLE_RETRY_SECONDS

    @property
    def retry_after_seconds(self) -> int:
        return STORE_UNAVAILABLE_RETRY_SECONDS


class OperationTimedOut(GatewayError):
    """The gateway's own limit (PROVIDER_TIMEOUT is an upstream's)."""

    code = ErrorCode.TIMEOUT
    retryable = True

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The operation took longer than {seconds:g} s and was cancelled",
            details={"reason": TIMEOUT_REASON, "timeoutSeconds": seconds},
        )


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
        self.code = PROVIDER_CODES[error.kind]
        self.retryable = error.retryable
        self.retry_after = error.retry_after
        self.provider = error.provider
        # For metrics and health: the upstream's HTTP status, and whether it refused our key.
        self.status = error.status
        self.key_refused = error.kind is FailureKind.KEY_REFUSED


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


class CredentialError(Exception):
    """A credential was refused; `str(error)` is safe to show to the client."""


class MalformedCredential(CredentialError):
    """The credential cannot even be parsed (wrong scheme, wrong shape, bad encoding)."""


class ExpiredCredential(CredentialError):
    """The credential was genuine but has expired; the client should sign in again."""


class InvalidCredential(CredentialError):
    """The credential parsed but is not authentic or lacks what we require."""


class RevokedCredential(CredentialError):
    """The credential is authentic but has been revoked by its owner or an operator."""


class StoreConfigError(Exception):
    """`AIPASTA_RATE_LIMIT_STORAGE` cannot be used; the message says how to fix it."""


class KeyInputError(ValueError):
    """A user id, name or prefix that cannot be used; the message names which."""
