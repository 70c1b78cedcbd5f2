"""The per-request Context the resolvers receive, and the app-wide services behind it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import aiohttp
import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from aipasta.settings import Settings
from documents.database import Database
from resolvers.catalog import Catalog


@dataclass
class Services:
    """Built once by the app's lifespan; shared by every request."""

    settings: Settings
    http: aiohttp.ClientSession
    catalog: Catalog
    database: Database | None
    version: str
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class Context:
    """Built for each GraphQL request (or websocket connection)."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket | None
    request_id: str

    @property
    def is_admin(self) -> bool:
        # Until identities exist (the identity milestone) only a local caller is trusted
        # with admin operations such as refreshModels.
        client = self.request.client
        return client is not None and client.host in {"127.0.0.1", "::1", "localhost"}


Info = strawberry.Info[Context, None]
