"""The per-request Context the resolvers receive, and the app-wide services behind it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from aipasta.settings import Settings
from documents.database import Database
from providers.chat import ChatProvider
from providers.redaction import Redactor
from providers.retry import Sleep
from resolvers.background import BackgroundTasks
from resolvers.catalog.service import Catalog, CatalogView
from resolvers.errors import Forbidden, GatewayError, Unauthenticated
from resolvers.history.backlog import HistoryBacklog
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import Identity
from resolvers.identity.key_store import ApiKeyStore
from resolvers.limits.rate_limiter import RateLimiter
from resolvers.monitoring.metrics import Metrics
from resolvers.usage.recorder import UsageRecorder


class DatabaseProcess(Protocol):
    """The embedded database's supervisor, as health reports it."""

    state: str
    restarts: int
    failed_attempts: int


@dataclass
class Services:
    """Built once by the app's lifespan; shared by every request."""

    settings: Settings
    http: aiohttp.ClientSession
    catalog: Catalog
    database: Database | None
    keys: ApiKeyStore
    authenticator: Authenticator
    version: str
    started_at: float = field(default_factory=time.monotonic)
    chat: Mapping[str, ChatProvider] = field(default_factory=dict)
    usage: UsageRecorder = field(default_factory=lambda: UsageRecorder(None))
    history_backlog: HistoryBacklog = field(default_factory=lambda: HistoryBacklog(None))
    background: BackgroundTasks = field(default_factory=BackgroundTasks)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter.with_defaults)
    # Set when the server runs the embedded database itself.
    database_process: DatabaseProcess | None = None
    # Takes every configured secret out of what reaches clients and logs.
    redactor: Redactor = field(default_factory=Redactor)
    metrics: Metrics = field(default_factory=Metrics)
    # How a chat run waits before its retry (a test records the delay instead).
    retry_sleep: Sleep = asyncio.sleep

    def __post_init__(self) -> None:
        self.metrics.watch(self)

    async def catalog_view(self, providers: Collection[str] | None = None) -> CatalogView:
        """The catalog for one read (waiting on a cold start only for `providers`, all by
        default), counted as a cache hit or miss."""
        view = await self.catalog.view(providers)
        self.metrics.catalog_read(cached=view.cached)
        return view


@dataclass
class Context:
    """Built for each GraphQL request (or websocket connection)."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None
    request_id: str
    identity: Identity | None = None
    # Why a presented credential was not accepted: public fields still answer, the
    # rest report this instead of a bare "sign in".
    auth_error: GatewayError | None = None
    # The credential a websocket connection signed in with, checked again while it lives.
    authorization: str | None = None
    # graphql-transport-ws `connection_init` payload (Strawberry sets it).
    connection_params: dict[str, Any] | None = None
    # The running operation's time limit, when it has one (queries and mutations over HTTP).
    deadline: asyncio.Timeout | None = None
    # The operation came as GraphQL over SSE (aipasta.edge.sse): its results stream.
    over_sse: bool = False

    def allow_up_to(self, seconds: float) -> None:
        """Let this operation run `seconds` from now: a whole chat answer may take minutes,
        and it has its own upstream timeouts."""
        if self.deadline is not None:
            self.deadline.reschedule(asyncio.get_running_loop().time() + seconds)

    def require_user(self) -> Identity:
        if self.identity is not None:
            return self.identity
        if self.auth_error is not None:
            raise self.auth_error
        raise Unauthenticated("sign in: send `Authorization: Bearer <token>`")

    def require_admin(self) -> Identity:
        identity = self.require_user()
        if not identity.is_admin:
            raise Forbidden("this operation is for administrators")
        return identity

    @property
    def is_admin(self) -> bool:
        return self.identity is not None and self.identity.is_admin


Info = strawberry.Info[Context, None]
