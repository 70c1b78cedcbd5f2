"""GET a JSON document from an upstream, with bounded retries.

Used for catalog listings, where a retry is always safe. Chat requests are not
retried here: whether they may be depends on what was already streamed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from providers.errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    error_from_response,
)
from providers.pool import PoolWait
from providers.retry import Sleep, retrying

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `retries` extra attempts after the first, exponential backoff."""

    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 10.0
    timeout: float = 30.0
    connect_timeout: float = 10.0
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def delay(self, attempt: int, error: ProviderError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        return float(self.backoff * (2**attempt))


def _retryable(error: ProviderError) -> bool:
    return isinstance(
        error, ProviderTimeout | ProviderRateLimited | ProviderUnavailable | ProviderProtocolError
    )


async def get_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str],
    policy: RetryPolicy,
) -> object:
    def before_sleep(attempt: int, error: ProviderError, delay: float) -> None:
        log.warning(
            "%s: attempt %d failed (%s), retrying in %.1fs",
            provider,
            attempt + 1,
            error.message,
            delay,
        )

    attempts = retrying(
        attempts=policy.retries + 1,
        retryable=_retryable,
        delay=policy.delay,
        sleep=policy.sleep,
        before_sleep=before_sleep,
    )
    return await attempts(
        _get_once, session, url, provider=provider, headers=headers, policy=policy
    )


async def _get_once(
    session: aiohttp.ClientSession,
    url: str,
    *,
    provider: str,
    headers: Mapping[str, str],
    policy: RetryPolicy,
) -> object:
    timeout = aiohttp.ClientTimeout(total=policy.timeout, sock_connect=policy.connect_timeout)
    pool = PoolWait()
    try:
        async with session.get(
            url, headers=dict(headers), timeout=timeout, trace_request_ctx=pool.context
        ) as response:
            body = await _read_capped(response, provider)
            if response.status >= 400:
                raise error_from_response(provider, response.status, body, response.headers)
    except TimeoutError:
        if (exhausted := pool.exhausted(provider)) is not None:
            raise exhausted from None
        raise ProviderTimeout(f"no answer within {policy.timeout:g}s", provider=provider) from None
    except aiohttp.ClientError as exc:
        raise ProviderUnavailable(
            f"connection failed ({type(exc).__name__})", provider=provider
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        raise ProviderProtocolError(
            "answered with a body that is not JSON", provider=provider, status=response.status
        ) from None


async def _read_capped(response: aiohttp.ClientResponse, provider: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProviderProtocolError(
                f"answer larger than {MAX_BODY_BYTES} bytes", provider=provider
            )
        chunks.append(chunk)
    return b"".join(chunks)
