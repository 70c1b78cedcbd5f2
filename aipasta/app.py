"""The app factory: settings in, Starlette app out; the lifespan owns every resource."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypedDict

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from aipasta import __version__
from aipasta.database import close_served_database, serve_database
from aipasta.edge.graphql_view import GatewayGraphQL
from aipasta.edge.middleware import edge_middleware
from aipasta.edge.openai_v1 import openai_routes
from aipasta.edge.request_ids import request_id
from aipasta.edge.rest import rest_routes
from aipasta.graphiql import graphiql_routes
from aipasta.redactor import build_redactor, install_log_redaction
from aipasta.settings import AuthMode, Settings
from aipasta.upstreams import builtin_simulator, chat_providers, http_session, model_sources
from documents.database import Database
from documents.errors import DatabaseUnavailable
from resolvers.catalog.service import Catalog, Clock, utc_now
from resolvers.catalog.store import CatalogStore
from resolvers.context import Services
from resolvers.history.backlog import HistoryBacklog
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from resolvers.limits.rate_limiter import RateLimiter
from resolvers.monitoring.health import health_document
from resolvers.monitoring.metrics import render_metrics
from resolvers.usage.recorder import UsageRecorder
from resolvers.usage.totals import TotalsBackfill
from schema.errors import error_answer
from schema.types.enums import ErrorCode

log = logging.getLogger("aipasta")

SHUTDOWN_GRACE_SECONDS = 10.0
# A catalog refresh round (retries included) lasts at most this many request timeouts.
MODELS_ROUND_ATTEMPTS = 3


class State(TypedDict):
    services: Services


def bearer_matches(request: Request, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _admin_key_text(key: str) -> str:
    return (
        "\nNo API keys existed, so an admin key was created for user 'admin'.\n"
        "It is shown only this once; only its hash is stored:\n\n"
        f"    {key}\n\n"
        'In GraphiQL, open "Headers" and paste:\n\n'
        f'    {{"Authorization": "Bearer {key}"}}\n\n'
        "More keys: aipasta keys create --user ID [--admin]\n"
    )


def _write_owner_only(path: Path, text: str) -> None:
    """Create `path` readable by its owner only: the mode is set by the call that creates
    it (never a moment world-readable), and an existing file is never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


async def _bootstrap_admin_key(
    settings: Settings,
    database: Database | None,
    keys: ApiKeyStore,
    *,
    interactive: Callable[[], bool],
) -> None:
    """First start with sign-in required and no keys at all: make one admin key, show it
    once: on the terminal when there is one, else in an owner-only file of the data folder.
    """
    if settings.auth is not AuthMode.REQUIRED or database is None or not database.available:
        return
    try:
        if await keys.count() > 0:
            return
        created = await keys.create(user_id="admin", name="first admin key", admin=True)
    except DatabaseUnavailable:
        log.warning("could not check for API keys: database unavailable")
        return
    text = _admin_key_text(created.key)
    if interactive():
        # Straight to the terminal, not the log: log pipelines keep what they are given.
        print(text, file=sys.stderr, flush=True)
        return
    # No terminal (a service, a container): stderr is likely a log pipeline too.
    path = (settings.data_dir / f"admin-key-{created.record.prefix}.txt").resolve()
    try:
        await asyncio.to_thread(_write_owner_only, path, text)
    except OSError as exc:
        log.warning(
            "No API keys existed; an admin key was made but could not be written to %s (%s). "
            "Revoke it (prefix %s) and make one with: aipasta keys create --user ID --admin",
            path,
            exc.strerror,
            created.record.prefix,
        )
        return
    log.warning(
        "No API keys existed: an admin key for user 'admin' was written to %s "
        "(readable by its owner only). Read it, then delete the file.",
        path,
    )


async def freeze_start_objects(catalog: Catalog) -> None:
    """Once the catalog has its first lists (or its cold-start wait is over), move every
    object alive into the garbage collector's permanent generation.

    What start-up made (modules, the schema, the catalog: ~130,000 tracked objects) lives
    as long as the process, yet every full collection walked all of it: under load full
    collections came about once a second and took 60-100 ms each. Frozen, a full
    collection walks only what came after; a frozen object still goes the moment its last
    reference does, only a reference cycle among frozen objects is never collected.
    """
    await catalog.view()
    gc.collect()
    gc.freeze()
    log.debug("froze %d start-up objects for the garbage collector", gc.get_freeze_count())


def create_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    interactive: Callable[[], bool] | None = None,
    freeze_after_start: bool = False,
) -> Starlette:
    """`interactive` says whether stderr is a terminal (default: ask it at start-up).
    `freeze_after_start` (for the process that serves, not for an app among many in one
    process, such as the tests'): see `freeze_start_objects`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # First: a bad AIPASTA_RATE_LIMIT_STORAGE stops the start before anything is open.
        rate_limiter = RateLimiter(settings)
        redactor = build_redactor(settings)
        uninstall_log_redaction = install_log_redaction(redactor)
        database, supervisor = await serve_database(settings)
        simulator = await builtin_simulator(settings)
        http = http_session(settings)
        catalog = Catalog(
            model_sources(settings, http, simulator),
            store=CatalogStore(database),
            ttl_seconds=settings.models_ttl_seconds,
            retry_seconds=settings.models_retry_seconds,
            round_timeout=MODELS_ROUND_ATTEMPTS * settings.models_fetch_timeout,
            cold_wait=settings.models_cold_start_wait,
            clock=clock,
            redactor=redactor,
        )
        keys = ApiKeyStore(database)
        usage = UsageRecorder(database)
        await usage.start()
        usage_backfill = TotalsBackfill(database)
        await usage_backfill.start()
        history_backlog = HistoryBacklog(database, retry_seconds=settings.db_retry_seconds)
        await history_backlog.start()
        services = Services(
            settings=settings,
            http=http,
            catalog=catalog,
            chat=chat_providers(settings, http, simulator),
            database=database,
            keys=keys,
            authenticator=Authenticator(settings, keys),
            version=__version__,
            usage=usage,
            history_backlog=history_backlog,
            rate_limiter=rate_limiter,
            database_process=supervisor,
            redactor=redactor,
        )
        await _bootstrap_admin_key(
            settings, database, keys, interactive=interactive or stderr_is_terminal
        )
        catalog.start()
        freezing = (
            asyncio.create_task(freeze_start_objects(catalog)) if freeze_after_start else None
        )
        try:
            yield {"services": services}
        finally:
            if freezing is not None:
                freezing.cancel()
            # Order matters: finish cancelled streams' bookkeeping, write the usage buffer,
            # then let go of the connections those two need.
            await usage_backfill.close()
            await services.background.drain(within=SHUTDOWN_GRACE_SECONDS)
            await usage.close()
            await history_backlog.close()
            await catalog.close()
            await http.close()
            if simulator is not None:
                await simulator.close()
            await rate_limiter.close()
            await close_served_database(database, supervisor)
            uninstall_log_redaction()

    async def health_endpoint(request: Request) -> JSONResponse:
        document = await health_document(request.state.services)
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    async def metrics_endpoint(request: Request) -> Response:
        if metrics_token is not None and not bearer_matches(request, metrics_token):
            return JSONResponse(
                error_answer(
                    "send `Authorization: Bearer <AIPASTA_METRICS_TOKEN>`",
                    {"code": ErrorCode.UNAUTHENTICATED.value},
                    request_id(request.scope),
                ),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
            )
        return Response(
            render_metrics(request.state.services),
            media_type=CONTENT_TYPE_LATEST,
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
            *rest_routes(),
            *openai_routes(),
            *graphiql_routes(settings),
        ],
        middleware=edge_middleware(settings),
        lifespan=lifespan,
    )
