"""Operational counters in the Prometheus text format, read from the running services.

Nothing here does I/O: every number is already known in memory, so scraping is cheap
and works while MongoDB or an upstream is down.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from resolvers.context import Services

STATUSES = ("ok", "stale", "error", "loading")


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(val)}"' for key, val in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    return [
        f"# HELP {name} {help_text}",
        f"# TYPE {name} {kind}",
        *(_line(name, value, labels) for labels, value in samples),
    ]


def render_metrics(services: Services) -> str:
    catalog = services.catalog.snapshot().providers
    usage, limiter = services.usage, services.rate_limiter
    database_up = services.database is not None and services.database.available
    single: list[tuple[str, str, str, float]] = [
        (
            "aipasta_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            round(time.monotonic() - services.started_at, 3),
        ),
        ("aipasta_database_up", "gauge", "1 when MongoDB is connected.", int(database_up)),
        (
            "aipasta_usage_records_pending",
            "gauge",
            "Usage records waiting to be written.",
            usage.pending,
        ),
        (
            "aipasta_usage_records_dropped_total",
            "counter",
            "Usage records dropped because the buffer was full.",
            usage.dropped,
        ),
        (
            "aipasta_usage_records_rejected_total",
            "counter",
            "Usage records MongoDB refused as invalid.",
            usage.rejected,
        ),
        (
            "aipasta_rate_limit_store_failures_total",
            "counter",
            "Rate-limit checks let through because the limiter's store failed.",
            limiter.store_failures,
        ),
        (
            "aipasta_rate_limit_store_up",
            "gauge",
            "1 when the rate limiter's store answered last time (always 1 in memory).",
            int(limiter.store_up),
        ),
        (
            "aipasta_rate_limit_store_shared",
            "gauge",
            "1 when the rate limits are counted in a store shared with other processes.",
            int(limiter.store_shared),
        ),
        ("aipasta_open_streams", "gauge", "Chat streams open now.", limiter.open_streams_total),
        (
            "aipasta_background_tasks",
            "gauge",
            "Bookkeeping of finished or cancelled streams still running.",
            services.background.running,
        ),
    ]
    out: list[str] = []
    for name, kind, help_text, value in single:
        out += _metric(name, kind, help_text, [({}, value)])
    out += _metric(
        "aipasta_catalog_models",
        "gauge",
        "Models in each provider's current list.",
        [({"provider": p.provider}, p.model_count) for p in catalog],
    )
    out += _metric(
        "aipasta_catalog_provider_status",
        "gauge",
        "1 for each provider's catalog status (ok, stale, error, loading).",
        [
            ({"provider": p.provider, "status": status}, int(p.status == status))
            for p in catalog
            for status in STATUSES
        ],
    )
    return "\n".join(out) + "\n"
