"""Opening the database for the server or a CLI command: MONGODB_URI, or the embedded one."""

from __future__ import annotations

import asyncio
import logging

from aipasta.embedded import EmbeddedError, EmbeddedMongo, Lease
from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models

log = logging.getLogger("aipasta")


async def open_database(settings: Settings) -> tuple[Database | None, Lease | None]:
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


async def close_database(
    settings: Settings, database: Database | None, lease: Lease | None
) -> None:
    if database is not None:
        await database.close()
    if lease is not None:
        await asyncio.to_thread(EmbeddedMongo(settings.data_dir).release, lease)
