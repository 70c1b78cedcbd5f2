"""Opening the database for the server or a CLI command: MONGODB_URI, or the embedded one."""

from __future__ import annotations

import asyncio
import logging
import time

from aipasta.embedded import EmbeddedError, EmbeddedMongo, Lease, unused_uri
from aipasta.settings import Settings
from aipasta.supervisor import EmbeddedSupervisor, Monotonic, Sleep
from documents.database import Database
from documents.registry import document_models

log = logging.getLogger("aipasta")


def _embedded(settings: Settings) -> EmbeddedMongo:
    return EmbeddedMongo(
        settings.data_dir,
        start_timeout=settings.embedded_start_timeout,
        cache_mb=settings.embedded_cache_mb,
    )


def _using_embedded(embedded: EmbeddedMongo, lease: Lease) -> None:
    log.info(
        "MONGODB_URI not set: using the embedded database in %s (port %d)",
        embedded.data_dir / "db",
        lease.port,
    )


async def _connect(settings: Settings, uri: str) -> Database:
    database = Database(
        uri,
        db_name=settings.db_name,
        document_models=document_models(),
        connect_timeout_ms=settings.db_timeout_ms,
        operation_timeout_ms=settings.db_operation_timeout_ms,
        retry_seconds=settings.db_retry_seconds,
    )
    await database.start()
    return database


async def open_database(settings: Settings) -> tuple[Database | None, Lease | None]:
    """For a CLI command: the database now, or None (said in the log)."""
    lease: Lease | None = None
    if settings.mongodb_uri is not None:
        uri = settings.mongodb_uri.get_secret_value()
    else:
        embedded = _embedded(settings)
        try:
            lease = await asyncio.to_thread(embedded.acquire)
        except (EmbeddedError, OSError) as exc:
            # One clear line, no traceback: the message says what to do.
            log.error("embedded database unavailable: %s", exc)  # noqa: TRY400
            return None, None
        uri = lease.uri
        _using_embedded(embedded, lease)
    return await _connect(settings, uri), lease


async def close_database(
    settings: Settings, database: Database | None, lease: Lease | None
) -> None:
    if database is not None:
        await database.close()
    if lease is not None:
        await asyncio.to_thread(_embedded(settings).release, lease)


async def serve_database(
    settings: Settings, *, sleep: Sleep = asyncio.sleep, clock: Monotonic = time.monotonic
) -> tuple[Database, EmbeddedSupervisor | None]:
    """For the API server: the database, and with the embedded one its supervisor, which
    keeps starting it (with back-off) when it cannot start now or exits later."""
    if settings.mongodb_uri is not None:
        return await _connect(settings, settings.mongodb_uri.get_secret_value()), None
    embedded = _embedded(settings)
    supervisor = EmbeddedSupervisor(
        embedded,
        check_seconds=settings.embedded_check_seconds,
        backoff_seconds=settings.embedded_restart_backoff,
        max_backoff_seconds=settings.embedded_restart_max_backoff,
        sleep=sleep,
        clock=clock,
    )
    await supervisor.start()
    lease = supervisor.lease
    if lease is not None:
        _using_embedded(embedded, lease)
    # Until the server starts, the client points at a closed port: operations answer
    # DATABASE_UNAVAILABLE at once, and the supervisor moves the client when it is up.
    database = await _connect(settings, lease.uri if lease is not None else unused_uri())
    supervisor.watch(database)
    return database, supervisor


async def close_served_database(database: Database, supervisor: EmbeddedSupervisor | None) -> None:
    if supervisor is not None:
        await supervisor.stop_watching()
    await database.close()
    if supervisor is not None:
        await supervisor.close()
