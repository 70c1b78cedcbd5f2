"""Each provider error's kind has one public code (resolvers.errors.PROVIDER_CODES)."""

from __future__ import annotations

import pytest

from providers.errors import (
    ContentFiltered,
    FailureKind,
    InsufficientCredits,
    PoolExhausted,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    UpstreamModelNotFound,
)
from resolvers.errors import PROVIDER_CODES, UpstreamFailure
from schema.types.enums import ErrorCode


def test_every_kind_has_a_code() -> None:
    assert set(PROVIDER_CODES) == set(FailureKind)


@pytest.mark.parametrize(
    ("error_class", "code", "key_refused"),
    [
        (ProviderError, ErrorCode.PROVIDER_ERROR, False),
        (ProviderBadRequest, ErrorCode.BAD_USER_INPUT, False),
        (ProviderAuthError, ErrorCode.PROVIDER_ERROR, True),
        (InsufficientCredits, ErrorCode.INSUFFICIENT_CREDITS, False),
        (ContentFiltered, ErrorCode.CONTENT_FILTERED, False),
        (UpstreamModelNotFound, ErrorCode.MODEL_NOT_FOUND, False),
        (ProviderTimeout, ErrorCode.PROVIDER_TIMEOUT, False),
        (PoolExhausted, ErrorCode.PROVIDER_TIMEOUT, False),
        (ProviderRateLimited, ErrorCode.PROVIDER_RATE_LIMITED, False),
        (ProviderUnavailable, ErrorCode.PROVIDER_UNAVAILABLE, False),
        (ProviderProtocolError, ErrorCode.PROVIDER_ERROR, False),
    ],
)
def test_public_code_of_each_provider_error(
    error_class: type[ProviderError], code: ErrorCode, key_refused: bool
) -> None:
    failure = UpstreamFailure(error_class("boom", provider="openrouter", status=500))
    assert failure.code is code
    assert failure.extensions["code"] == code.value
    assert failure.key_refused is key_refused
    assert failure.retryable is error_class.retryable
