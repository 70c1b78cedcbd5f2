"""Whether one operation may run: the rate limits around sign-in, in their order.

1. the IP's flood guard (`AIPASTA_IP_FLOOD_LIMIT`), before any credential is looked at,
   so a refused client cannot make one database lookup per random well-formed key;
2. sign-in;
3. a signed-in operation counts against its user (`AIPASTA_USER_RATE_LIMIT`); an
   anonymous one, or one whose credential was refused, against its IP
   (`AIPASTA_RATE_LIMIT`): random keys buy no budget of their own. With
   `AIPASTA_AUTH=off` nobody signs in (everyone is the one local user), so every
   operation counts as anonymous, as in the seed.

HTTP requests (aipasta.edge.middleware) and websocket `subscribe` messages
(aipasta.edge.ws_protocol) both come through here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aipasta.settings import AuthMode
from resolvers.context import Services
from resolvers.identity.sign_in import SignIn
from resolvers.limits.rate_limiter import RateDecision


@dataclass(frozen=True)
class Admission:
    decision: RateDecision
    # None when the flood guard refused the operation before anyone signed in.
    sign_in: SignIn | None


async def admit(
    services: Services, *, client_ip: str, sign_in: Callable[[], Awaitable[SignIn]]
) -> Admission:
    limiter = services.rate_limiter
    flood = await limiter.flood(client_ip=client_ip)
    if not flood.allowed:
        services.metrics.rate_limited.labels(flood.scope).inc()
        return Admission(flood, None)
    signed_in = await sign_in()
    identity = signed_in.identity
    signed_in_user = identity is not None and services.settings.auth is not AuthMode.OFF
    decision = await limiter.check(
        client_ip=client_ip, user_id=identity.user_id if identity and signed_in_user else None
    )
    if not decision.allowed:
        services.metrics.rate_limited.labels(decision.scope).inc()
    return Admission(decision, signed_in)
