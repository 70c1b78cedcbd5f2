"""Health: the same report for the `health` query and `GET /health`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from resolvers.context import Info, Services

CONNECTED = "connected"
DISCONNECTED = "disconnected"
CONFIGURED = "configured"
NOT_CONFIGURED = "not_configured"
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


@dataclass(frozen=True)
class HealthReport:
    status: str
    services: HealthServices
    version: str
    uptime_seconds: float
    embedded_database: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "status": self.status,
            "services": asdict(self.services),
            "version": self.version,
            "uptimeSeconds": round(self.uptime_seconds, 3),
        }
        if self.embedded_database is not None:
            report["embeddedDatabase"] = self.embedded_database
        return report


def _configured(services: Services, provider: str) -> str:
    source = services.catalog.source(provider)
    return CONFIGURED if source is not None and source.configured else NOT_CONFIGURED


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


async def health_report(services: Services) -> HealthReport:
    database_up = services.database is not None and await services.database.ping()
    report = HealthServices(
        database=_database_state(services, database_up),
        openrouter=_configured(services, "openrouter"),
        huggingface=_configured(services, "huggingface"),
    )
    any_provider = CONFIGURED in (report.openrouter, report.huggingface)
    return HealthReport(
        status="ok" if database_up and any_provider else "degraded",
        services=report,
        version=services.version,
        uptime_seconds=time.monotonic() - services.started_at,
        embedded_database=_embedded_database(services),
    )


async def health(info: Info) -> HealthReport:
    return await health_report(info.context.services)
