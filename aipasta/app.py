"""The app factory: settings in, Starlette app out; the lifespan owns every resource."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from aipasta import __version__
from aipasta.database import close_database, open_database
from aipasta.edge import edge_middleware
from aipasta.graphiql import graphiql_routes
from aipasta.graphql_view import GatewayGraphQL
from aipasta.settings import AuthMode, Settings
from aipasta.upstreams import chat_providers, http_session, model_sources
from documents.database import Database
from documents.errors import DatabaseUnavailable
from resolvers.catalog import Catalog, Clock, utc_now
from resolvers.catalog_store import CatalogStore
from resolvers.context import Services
from resolvers.health import health_report
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from resolvers.metrics import render_metrics
from resolvers.rate_limiter import RateLimiter
from resolvers.usage_recorder import UsageRecorder

log = logging.getLogger("aipasta")

SHUTDOWN_GRACE_SECONDS = 10.0


class State(TypedDict):
    services: Services


async def _bootstrap_admin_key(
    settings: Settings, database: Database | None, keys: ApiKeyStore
) -> None:
    """First start with sign-in required and no keys at all: make one admin key, show it once."""
    if settings.auth is not AuthMode.REQUIRED or database is None or not database.available:
        return
    try:
        if await keys.count() > 0:
            return
        created = await keys.create(user_id="admin", name="first admin key", admin=True)
    except DatabaseUnavailable:
        log.warning("could not check for API keys: database unavailable")
        return
    # Straight to the terminal, not the log: log pipelines keep what they are given.
    print(
        "\nNo API keys existed, so an admin key was created for user 'admin'.\n"
        "It is shown only this once; only its hash is stored:\n\n"
        f"    {created.key}\n\n"
        'In GraphiQL, open "Headers" and paste:\n\n'
        f'    {{"Authorization": "Bearer {created.key}"}}\n\n'
        "More keys: aipasta keys create --user ID [--admin]\n",
        file=sys.stderr,
        flush=True,
    )


def create_app(settings: Settings, *, clock: Clock = utc_now) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # First: a bad AIPASTA_RATE_LIMIT_STORAGE stops the start before anything is open.
        rate_limiter = RateLimiter(settings)
        database, lease = await open_database(settings)
        http = http_session(settings)
        catalog = Catalog(
            model_sources(settings, http),
            store=CatalogStore(database),
            ttl_seconds=settings.models_ttl_seconds,
            retry_seconds=settings.models_retry_seconds,
            clock=clock,
        )
        keys = ApiKeyStore(database)
        usage = UsageRecorder(database)
        await usage.start()
        services = Services(
            settings=settings,
            http=http,
            catalog=catalog,
            chat=chat_providers(settings, http),
            database=database,
            keys=keys,
            authenticator=Authenticator(settings, keys),
            version=__version__,
            usage=usage,
            rate_limiter=rate_limiter,
        )
        await _bootstrap_admin_key(settings, database, keys)
        try:
            yield {"services": services}
        finally:
            # Order matters: finish cancelled streams' bookkeeping, write the usage buffer,
            # then let go of the connections those two need.
            await services.background.drain(within=SHUTDOWN_GRACE_SECONDS)
            await usage.close()
            await http.close()
            await rate_limiter.close()
            await close_database(settings, database, lease)

    async def health_endpoint(request: Request) -> JSONResponse:
        report = await health_report(request.state.services)
        return JSONResponse(report.as_json(), headers={"Cache-Control": "no-store"})

    async def metrics_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(
            render_metrics(request.state.services),
            media_type="text/plain; version=0.0.4",
            headers={"Cache-Control": "no-store"},
        )

    graphql = GatewayGraphQL(settings)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health_endpoint, methods=["GET"]),
            Route("/api/health", health_endpoint, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *graphiql_routes(settings),
        ],
        middleware=edge_middleware(settings),
        lifespan=lifespan,
    )
