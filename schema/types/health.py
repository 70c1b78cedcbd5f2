"""Health types."""

from __future__ import annotations

import strawberry


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
class HealthProvider:
    name: str
    state: str = strawberry.field(
        description="ok, stale (the last good list), loading, error (no list: the fetch "
        "failed) or key_rejected (its last chat answer refused the server's key)"
    )
    configured: bool = strawberry.field(description="it has a key and a chat client")
    model_count: int
    last_error: str | None


@strawberry.type
class Health:
    status: str = strawberry.field(description="ok, degraded or down")
    services: HealthServices
    version: str
    uptime_seconds: float
    providers: list[HealthProvider] = strawberry.field(
        description="Every provider, the AIPASTA_PROVIDERS ones included"
    )
