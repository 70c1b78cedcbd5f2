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

from typing import TYPE_CHECKING

from schema.types.health import HealthProvider

if TYPE_CHECKING:
    from resolvers.chat.run import RunResult
    from resolvers.context import Services

OK = "ok"
STALE = "stale"
LOADING = "loading"
ERROR = "error"
KEY_REJECTED = "key_rejected"
_SERVING = (OK, STALE, LOADING)


def can_serve(provider: HealthProvider) -> bool:
    """Whether the provider can serve chat now."""
    return provider.configured and provider.state in _SERVING


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


def provider_states(services: Services) -> list[HealthProvider]:
    view = services.catalog.snapshot()
    states = []
    for listing in view.states:
        name = listing.provider
        source = services.catalog.source(name)
        configured = source is not None and source.configured and name in services.chat
        refused = services.metrics.outcomes.key_rejected(name)
        state: str
        last_error: str | None
        if refused is not None:
            state, last_error = KEY_REJECTED, refused
        elif listing.key_refused:
            state, last_error = KEY_REJECTED, listing.error
        else:
            state = listing.status(view.now)
            last_error = listing.error
        states.append(
            HealthProvider(
                name=name,
                state=state,
                configured=configured,
                model_count=len(listing.models),
                last_error=last_error,
            )
        )
    return states
