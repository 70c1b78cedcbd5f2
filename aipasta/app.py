"""The app factory: settings in, Starlette app out; the lifespan owns every resource."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import aiohttp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from aipasta import __version__
from aipasta.embedded import EmbeddedError, EmbeddedMongo, Lease
from aipasta.graphql_view import GatewayGraphQL
from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models
from providers.fetch import RetryPolicy
from providers.huggingface import HuggingFaceModels
from providers.openrouter import OpenRouterModels, openrouter_headers
from resolvers.catalog import Catalog, Clock, utc_now
from resolvers.catalog_store import CatalogStore
from resolvers.context import Services
from resolvers.health import health_report

log = logging.getLogger("aipasta")


class State(TypedDict):
    services: Services


def _retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        retries=settings.upstream_retries,
        backoff=settings.upstream_backoff_seconds,
        max_retry_after=settings.upstream_max_retry_after,
        timeout=settings.catalog_timeout,
        connect_timeout=settings.upstream_connect_timeout,
    )


async def _open_database(settings: Settings) -> tuple[Database | None, Lease | None]:
    lease: Lease | None = None
    if settings.mongodb_uri is not None:
        uri = settings.mongodb_uri.get_secret_value()
    else:
        embedded = EmbeddedMongo(settings.data_dir, start_timeout=settings.embedded_start_timeout)
        try:
            lease = await asyncio.to_thread(embedded.acquire)
        except (EmbeddedError, OSError) as exc:
            # One clear line, no traceback: the message says what to do.
            log.error("embedded database unavailable: %s", exc)  # noqa: TRY400
            return None, None
        uri = lease.uri
        log.info(
            "MONGODB_URI not set: using the embedded database in %s (port %d)",
            embedded.data_dir / "db",
            lease.port,
        )
    database = Database(
        uri,
        db_name=settings.db_name,
        document_models=document_models(),
        connect_timeout_ms=settings.db_timeout_ms,
        operation_timeout_ms=settings.db_operation_timeout_ms,
        retry_seconds=settings.db_retry_seconds,
    )
    await database.start()
    return database, lease


def create_app(settings: Settings, *, clock: Clock = utc_now) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        database, lease = await _open_database(settings)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200, limit_per_host=100),
            headers={"User-Agent": f"aipasta/{__version__}"},
        )
        policy = _retry_policy(settings)
        catalog = Catalog(
            [
                OpenRouterModels(
                    http,
                    base_url=settings.openrouter_base_url,
                    api_key=settings.openrouter_api_key,
                    headers=openrouter_headers(
                        settings.openrouter_api_key,
                        app_url=settings.app_url,
                        app_title=settings.app_title,
                    ),
                    policy=policy,
                ),
                HuggingFaceModels(
                    http,
                    base_url=settings.huggingface_base_url,
                    api_key=settings.huggingface_api_key,
                    policy=policy,
                ),
            ],
            store=CatalogStore(database),
            ttl_seconds=settings.models_ttl_seconds,
            retry_seconds=settings.models_retry_seconds,
            clock=clock,
        )
        services = Services(
            settings=settings, http=http, catalog=catalog, database=database, version=__version__
        )
        try:
            yield {"services": services}
        finally:
            await http.close()
            if database is not None:
                await database.close()
            if lease is not None:
                await asyncio.to_thread(EmbeddedMongo(settings.data_dir).release, lease)

    async def health_endpoint(request: Request) -> JSONResponse:
        report = await health_report(request.state.services)
        return JSONResponse(report.as_json(), headers={"Cache-Control": "no-store"})

    graphql = GatewayGraphQL(settings)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/health", health_endpoint, methods=["GET"]),
            Route("/api/health", health_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
