"""Each provider's state, from its last catalog fetch and its last chat outcome.

- `key_rejected`: its last chat answer or its last catalog fetch was a 401/403 (the
  server's key was refused); cleared by its next successful answer or fetch.
- otherwise the catalog's status: `ok`, `stale` (the last good list, a refresh failed or
  is due), `loading` (no list yet, a fetch is due or under way) or `error` (no list, the
  fetch failed).

A configured provider with a chat client can serve chat unless it is `error` or
`key_rejected`: one still loading is given the benefit of the doubt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resolvers.chat.run import RunResult
    from resolvers.context import Services

OK = "ok"
STALE = "stale"
LOADING = "loading"
ERROR = "error"
KEY_REJECTED = "key_rejected"
_SERVING = (OK, STALE, LOADING)


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    state: str
    model_count: int
    last_error: str | None
    configured: bool
    can_serve: bool


class ChatOutcomes:
    """The last chat outcome per provider that health needs: was its key refused."""

    def __init__(self) -> None:
        self._key_rejected: dict[str, str] = {}

    def record(self, result: RunResult) -> None:
        provider = result.model.provider
        error = result.error
        if error is None:
            self._key_rejected.pop(provider, None)
        elif getattr(error, "key_refused", False):
            self._key_rejected[provider] = error.message

    def key_rejected(self, provider: str) -> str | None:
        return self._key_rejected.get(provider)


def provider_states(services: Services) -> list[ProviderHealth]:
    states = []
    for status in services.catalog.snapshot().providers:
        name = status.provider
        source = services.catalog.source(name)
        configured = source is not None and source.configured and name in services.chat
        refused = services.metrics.outcomes.key_rejected(name)
        state: str
        last_error: str | None
        if refused is not None:
            state, last_error = KEY_REJECTED, refused
        elif status.key_refused:
            state, last_error = KEY_REJECTED, status.error
        else:
            state = status.status
            last_error = status.error
        states.append(
            ProviderHealth(
                name=name,
                state=state,
                model_count=status.model_count,
                last_error=last_error,
                configured=configured,
                can_serve=configured and state in _SERVING,
            )
        )
    return states
