"""Health: the same report for the `health` query and `GET /health`."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from resolvers.context import Info, Services
from resolvers.monitoring.provider_health import can_serve, provider_states
from schema.types.health import Health, HealthServices

CONNECTED = "connected"
DISCONNECTED = "disconnected"
CONFIGURED = "configured"
NOT_CONFIGURED = "not_configured"
# The rate limiter's store when it is this process's memory (nothing to reach).
MEMORY = "memory"
# The embedded database's process (see aipasta/supervisor.py): it runs, it has exited
# and is being started again, or it has not started yet.
RUNNING = "running"
RESTARTING = "restarting"
STARTING = "starting"


def _services_json(report: HealthServices) -> dict[str, str]:
    services = {_camel(name): value for name, value in asdict(report).items()}
    # The seed's format, plus the simulator only while it serves.
    if services["simulator"] != CONFIGURED:
        del services["simulator"]
    return services


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.title() for word in rest)


def _configured(services: Services, provider: str) -> str:
    source = services.catalog.source(provider)
    return CONFIGURED if source is not None and source.configured else NOT_CONFIGURED


async def _rate_limit_store(services: Services) -> str:
    limiter = services.rate_limiter
    up = await limiter.ping_store()
    if not limiter.store_shared:
        return MEMORY
    return CONNECTED if up else DISCONNECTED


def _database_state(services: Services, up: bool) -> str:
    if up:
        return CONNECTED
    process = services.database_process
    if process is not None and process.state != RUNNING:
        return process.state  # "starting" or "restarting": the server is on it
    return DISCONNECTED


def _embedded_database(services: Services) -> dict[str, Any] | None:
    process = services.database_process
    if process is None:
        return None
    return {
        "state": process.state,
        "restarts": process.restarts,
        "failedAttempts": process.failed_attempts,
    }


async def _ping(services: Services) -> bool:
    if services.database is None:
        return False
    return await services.database.ping()


async def health_report(services: Services) -> Health:
    """`ok` when the database is connected, the limiter's store answers and at least one
    provider can serve chat (resolvers.monitoring.provider_health); `degraded` otherwise."""
    database_up = await _ping(services)
    report = HealthServices(
        database=_database_state(services, database_up),
        openrouter=_configured(services, "openrouter"),
        huggingface=_configured(services, "huggingface"),
        simulator=_configured(services, "simulator"),
        rate_limit_store=await _rate_limit_store(services),
    )
    providers = provider_states(services)
    any_provider = any(can_serve(p) for p in providers)
    store_up = report.rate_limit_store != DISCONNECTED
    return Health(
        status="ok" if database_up and any_provider and store_up else "degraded",
        services=report,
        version=services.version,
        uptime_seconds=time.monotonic() - services.started_at,
        providers=providers,
    )


async def health_document(services: Services) -> dict[str, Any]:
    """The `GET /health` body: the report, plus the embedded database's process."""
    report = await health_report(services)
    document: dict[str, Any] = {
        "status": report.status,
        "services": _services_json(report.services),
        "version": report.version,
        "uptimeSeconds": round(report.uptime_seconds, 3),
    }
    embedded_database = _embedded_database(services)
    if embedded_database is not None:
        document["embeddedDatabase"] = embedded_database
    document["providers"] = [
        {
            "name": p.name,
            "state": p.state,
            "configured": p.configured,
            "modelCount": p.model_count,
            "lastError": p.last_error,
        }
        for p in report.providers
    ]
    return document


async def health(info: Info) -> Health:
    return await health_report(info.context.services)
