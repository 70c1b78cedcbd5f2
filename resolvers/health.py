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


@dataclass(frozen=True)
class HealthServices:
    database: str
    openrouter: str
    huggingface: str
    simulator: str


@dataclass(frozen=True)
class HealthReport:
    status: str
    services: HealthServices
    version: str
    uptime_seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "services": self._services_json(),
            "version": self.version,
            "uptimeSeconds": round(self.uptime_seconds, 3),
        }

    def _services_json(self) -> dict[str, str]:
        services = asdict(self.services)
        # The seed's format, plus the simulator only while it serves.
        if services["simulator"] != CONFIGURED:
            del services["simulator"]
        return services


def _configured(services: Services, provider: str) -> str:
    source = services.catalog.source(provider)
    return CONFIGURED if source is not None and source.configured else NOT_CONFIGURED


async def health_report(services: Services) -> HealthReport:
    database_up = services.database is not None and await services.database.ping()
    report = HealthServices(
        database=CONNECTED if database_up else DISCONNECTED,
        openrouter=_configured(services, "openrouter"),
        huggingface=_configured(services, "huggingface"),
        simulator=_configured(services, "simulator"),
    )
    any_provider = CONFIGURED in (report.openrouter, report.huggingface, report.simulator)
    return HealthReport(
        status="ok" if database_up and any_provider else "degraded",
        services=report,
        version=services.version,
        uptime_seconds=time.monotonic() - services.started_at,
    )


async def health(info: Info) -> HealthReport:
    return await health_report(info.context.services)
