"""The one way a provider call is retried: tenacity, with the sleep injected.

Used by catalog fetches (providers.fetch) and chat runs (resolvers.chat.run); a test
passes a sleep that records the delay instead of waiting it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from providers.errors import ProviderError

Sleep = Callable[[float], Awaitable[None]]
# The attempt that failed (0 for the first), its error, and the delay before the next.
BeforeSleep = Callable[[int, ProviderError, float], None]


def retrying(
    *,
    attempts: int,
    retryable: Callable[[ProviderError], bool],
    delay: Callable[[int, ProviderError], float],
    sleep: Sleep,
    before_sleep: BeforeSleep | None = None,
) -> AsyncRetrying:
    """At most `attempts` tries; a ProviderError that `retryable` accepts is tried again
    after `delay(attempt, error)` seconds; the last error, or any other, is raised as is.
    Call it with the coroutine function, or iterate it (`async for attempt in ...:
    with attempt: ...`) around a block, a streaming one included."""

    def wait(state: RetryCallState) -> float:
        return delay(state.attempt_number - 1, _failure(state))

    def announce(state: RetryCallState) -> None:
        if before_sleep is not None:
            before_sleep(state.attempt_number - 1, _failure(state), state.upcoming_sleep)

    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        retry=retry_if_exception(
            lambda error: isinstance(error, ProviderError) and retryable(error)
        ),
        wait=wait,
        before_sleep=announce,
        sleep=lambda seconds: sleep(float(seconds)),
        reraise=True,
    )


def _failure(state: RetryCallState) -> ProviderError:
    """The error of the attempt that just failed (only retryable ones get this far)."""
    error = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(error, ProviderError)
    return error
