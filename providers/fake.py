"""The in-process scripted provider, for tests of the layers above.

`FakeProvider` is a ChatProvider: each call to `stream_chat` plays the next script
queued with `enqueue`. Scripts can raise any exception at any point and can stop on an
`asyncio.Event` until the test releases them, so a test can observe "generation in
progress" without sleeping. `ScriptedSource` is a ModelSource with scripted listings.
(Tests that need real HTTP use `tests/support/fake_upstream.py` instead.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from providers.chat import ChatDelta, ChatRequest
from providers.errors import ProviderError, ProviderUnavailable
from providers.model import ModelInfo

ScriptItem = ChatDelta | str | BaseException | asyncio.Event


class NothingEnqueuedError(AssertionError):
    """The code under test called the provider more often than the test expected."""


@dataclass(frozen=True, slots=True)
class _Script:
    items: tuple[ScriptItem, ...]
    hold: asyncio.Event | None
    finish: str | None


class FakeProvider:
    """Plays scripted answers and records the requests it was given.

    Script items: a `ChatDelta`; a `str` (shorthand for a content delta); an exception
    instance (raised at that point, ending the stream); an `asyncio.Event` (the stream
    waits there until the test sets it).
    """

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.requests: list[ChatRequest] = []
        # Streams the consumer abandoned (aclose() or cancellation) before it got a
        # finish reason: what "stop generating" tests look for.
        self.closed_early = 0
        self._scripts: deque[_Script] = deque()

    def __repr__(self) -> str:
        return f"FakeProvider(name={self.name!r}, pending={self.pending})"

    @property
    def pending(self) -> int:
        return len(self._scripts)

    def enqueue(
        self,
        *items: ScriptItem,
        hold: asyncio.Event | None = None,
        finish: str | None = "stop",
    ) -> None:
        """Queue the answer to one future call.

        `hold`: after the items, wait for this event before ending the stream.
        `finish`: unless an item already carries a finish reason or an exception ends
        the script, a last empty delta with this finish reason is sent, as a real
        upstream does; None sends none.
        """
        self._scripts.append(_Script(items=items, hold=hold, finish=finish))

    def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        self.requests.append(request)
        if not self._scripts:
            raise NothingEnqueuedError(
                f"FakeProvider {self.name!r} got call #{len(self.requests)} "
                f"(model {request.model!r}) but nothing was enqueued for it"
            )
        return self._play(self._scripts.popleft())

    async def _play(self, script: _Script) -> AsyncIterator[ChatDelta]:
        sent_finish = False
        # True once the script ran out or raised its own exception.
        ended = False
        try:
            for item in script.items:
                if isinstance(item, BaseException):
                    ended = True
                    raise item
                if isinstance(item, asyncio.Event):
                    await item.wait()
                    continue
                delta = ChatDelta(content=item) if isinstance(item, str) else item
                sent_finish = sent_finish or delta.finish_reason is not None
                yield delta
            if script.hold is not None:
                await script.hold.wait()
            if not sent_finish and script.finish is not None:
                sent_finish = True
                yield ChatDelta(content="", finish_reason=script.finish)
            ended = True
        finally:
            # A consumer that stops right after the finish delta did not abandon it.
            if not (ended or sent_finish):
                self.closed_early += 1


def model(provider: str, upstream_id: str, **kwargs: object) -> ModelInfo:
    return ModelInfo(provider=provider, upstream_id=upstream_id, name=upstream_id, **kwargs)  # type: ignore[arg-type]


class ScriptedSource:
    """A ModelSource answering `models` (or raising `fail_with`), once `gate` is set."""

    def __init__(self, name: str, models: list[ModelInfo] | None = None) -> None:
        self.name = name
        self.configured = True
        self.models = models if models is not None else [model(name, f"{name}-model")]
        self.calls = 0
        self.fail_with: ProviderError | None = None
        self.gate: asyncio.Event | None = None
        self._called = asyncio.Condition()

    async def list_models(self) -> list[ModelInfo]:
        self.calls += 1
        async with self._called:
            self._called.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return list(self.models)

    async def wait_for_calls(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._called:
            await self._called.wait_for(lambda: self.calls >= count)

    def break_with_503(self) -> None:
        self.fail_with = ProviderUnavailable("HTTP 503", provider=self.name, status=503)
