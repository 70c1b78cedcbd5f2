"""Operational counters in the Prometheus text format, read from the running services.

Nothing here does I/O: every number is already known in memory, so scraping is cheap
and works while MongoDB or an upstream is down.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from resolvers.context import Services

STATUSES = ("ok", "stale", "error", "pending")


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(val)}"' for key, val in sorted(labels.items()))
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(name: str, kind: str, help_text: str, lines: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def render_metrics(services: Services) -> str:
    catalog = services.catalog.snapshot()
    out: list[str] = []
    out += _metric(
        "aipasta_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        [_line("aipasta_uptime_seconds", round(time.monotonic() - services.started_at, 3))],
    )
    out += _metric(
        "aipasta_database_up",
        "gauge",
        "1 when MongoDB is connected.",
        [
            _line(
                "aipasta_database_up",
                int(services.database is not None and services.database.available),
            )
        ],
    )
    out += _metric(
        "aipasta_catalog_models",
        "gauge",
        "Models in each provider's current list.",
        [
            _line("aipasta_catalog_models", p.model_count, {"provider": p.provider})
            for p in catalog.providers
        ],
    )
    out += _metric(
        "aipasta_catalog_provider_status",
        "gauge",
        "1 for each provider's catalog status (ok, stale, error, pending).",
        [
            _line(
                "aipasta_catalog_provider_status",
                int(p.status == status),
                {"provider": p.provider, "status": status},
            )
            for p in catalog.providers
            for status in STATUSES
        ],
    )
    usage = services.usage
    out += _metric(
        "aipasta_usage_records_pending",
        "gauge",
        "Usage records waiting to be written.",
        [_line("aipasta_usage_records_pending", usage.pending)],
    )
    out += _metric(
        "aipasta_usage_records_dropped_total",
        "counter",
        "Usage records dropped because the buffer was full.",
        [_line("aipasta_usage_records_dropped_total", usage.dropped)],
    )
    out += _metric(
        "aipasta_usage_records_rejected_total",
        "counter",
        "Usage records MongoDB refused as invalid.",
        [_line("aipasta_usage_records_rejected_total", usage.rejected)],
    )
    limiter = services.rate_limiter
    out += _metric(
        "aipasta_rate_limit_store_failures_total",
        "counter",
        "Rate-limit checks let through because the limiter's store failed.",
        [_line("aipasta_rate_limit_store_failures_total", limiter.store_failures)],
    )
    out += _metric(
        "aipasta_open_streams",
        "gauge",
        "Chat streams open now.",
        [_line("aipasta_open_streams", limiter.open_streams_total)],
    )
    out += _metric(
        "aipasta_background_tasks",
        "gauge",
        "Bookkeeping of finished or cancelled streams still running.",
        [_line("aipasta_background_tasks", services.background.running)],
    )
    return "\n".join(out) + "\n"
