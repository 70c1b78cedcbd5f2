"""Health types."""

from __future__ import annotations

import strawberry

from schema.catalog import ProviderCatalogStatus


@strawberry.type
class HealthServices:
    database: str = strawberry.field(description="connected or disconnected")
    openrouter: str = strawberry.field(description="configured or not_configured")
    huggingface: str
    simulator: str = strawberry.field(
        description="configured or not_configured: the built-in simulated upstream, whose "
        "answers are generated words (development, or AIPASTA_SIMULATOR=on)"
    )
    rate_limit_store: str = strawberry.field(
        description="memory (counted per process), connected or disconnected"
    )


@strawberry.type
class Health:
    status: str = strawberry.field(description="ok, degraded or down")
    services: HealthServices
    version: str
    uptime_seconds: float
    catalog: list[ProviderCatalogStatus] = strawberry.field(
        description="Each provider's model list (as in modelCatalog.providers)."
    )
