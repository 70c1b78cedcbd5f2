"""Health: the same report for the `health` query and `GET /health`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from resolvers.context import Info, Services
from resolvers.monitoring.provider_health import ProviderHealth, provider_states

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


@dataclass(frozen=True)
class HealthServices:
    database: str
    openrouter: str
    huggingface: str
    simulator: str
    # memory (this process's own counts), connected or disconnected.
    rate_limit_store: str


@dataclass(frozen=True)
class HealthReport:
    status: str
    services: HealthServices
    version: str
    uptime_seconds: float
    embedded_database: dict[str, Any] | None = None
    providers: tuple[ProviderHealth, ...] = ()

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "status": self.status,
            "services": self._services_json(),
            "version": self.version,
            "uptimeSeconds": round(self.uptime_seconds, 3),
        }
        if self.embedded_database is not None:
            report["embeddedDatabase"] = self.embedded_database
        report["providers"] = [
            {
                "name": p.name,
                "state": p.state,
                "configured": p.configured,
                "modelCount": p.model_count,
                "lastError": p.last_error,
            }
            for p in self.providers
        ]
        return report

    def _services_json(self) -> dict[str, str]:
        services = {_camel(name): value for name, value in asdict(self.services).items()}
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
    started = time.monotonic()
    up = await services.database.ping()
    services.metrics.database_pinged(time.monotonic() - started)
    return up


async def health_report(services: Services) -> HealthReport:
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
    providers = tuple(provider_states(services))
    any_provider = any(p.can_serve for p in providers)
    store_up = report.rate_limit_store != DISCONNECTED
    return HealthReport(
        status="ok" if database_up and any_provider and store_up else "degraded",
        services=report,
        version=services.version,
        uptime_seconds=time.monotonic() - services.started_at,
        embedded_database=_embedded_database(services),
        providers=providers,
    )


async def health(info: Info) -> HealthReport:
    return await health_report(info.context.services)
