"""Health: the same report for the `health` query and `GET /health`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from resolvers.catalog import ProviderStatus
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


@dataclass(frozen=True)
class HealthReport:
    status: str
    services: HealthServices
    version: str
    uptime_seconds: float
    # Each provider's model list: ok, stale, loading or error.
    catalog: tuple[ProviderStatus, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "services": asdict(self.services),
            "catalog": {p.provider: p.status for p in self.catalog},
            "version": self.version,
            "uptimeSeconds": round(self.uptime_seconds, 3),
        }


def _configured(services: Services, provider: str) -> str:
    source = services.catalog.source(provider)
    return CONFIGURED if source is not None and source.configured else NOT_CONFIGURED


async def health_report(services: Services) -> HealthReport:
    database_up = services.database is not None and await services.database.ping()
    report = HealthServices(
        database=CONNECTED if database_up else DISCONNECTED,
        openrouter=_configured(services, "openrouter"),
        huggingface=_configured(services, "huggingface"),
    )
    any_provider = CONFIGURED in (report.openrouter, report.huggingface)
    return HealthReport(
        status="ok" if database_up and any_provider else "degraded",
        services=report,
        version=services.version,
        uptime_seconds=time.monotonic() - services.started_at,
        catalog=tuple(services.catalog.snapshot().providers),
    )


async def health(info: Info) -> HealthReport:
    return await health_report(info.context.services)
