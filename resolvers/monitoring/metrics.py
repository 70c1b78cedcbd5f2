"""Prometheus metrics: one registry per app, events counted where they happen.

`Metrics` is held in `Services`; the resolvers call its methods when something
happened (an operation ended, a chat run ended, a limit refused a request). What is
already known in memory (the catalog, buffers, the database's and the limiter's state)
is read at scrape time by a collector, so scraping does no I/O and works while MongoDB
or an upstream is down.

Label values are bounded: operation names only when they look like GraphQL names and
only the first `MAX_OPERATION_NAMES` of them (then "other"); models only as catalog ids
(a run's model came from the catalog); never a user id.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from resolvers.limits.rate_limiter import Scope
from resolvers.monitoring.operation_facts import current_operation
from resolvers.monitoring.provider_health import ChatOutcomes, can_serve, provider_states

if TYPE_CHECKING:
    from resolvers.chat.run import RunResult
    from resolvers.context import Services

CATALOG_STATUSES = ("ok", "stale", "loading", "error")
MAX_OPERATION_NAMES = 100
RATE_LIMIT_SCOPES = get_args(Scope)
OTHER = "other"
ANONYMOUS = "anonymous"
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SLOW = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_RATE = (1, 5, 10, 20, 40, 80, 160, 320, 640)


def safe_name(name: str | None) -> str:
    """An operation's name as logs and labels show it: a client chooses it freely."""
    if not name:
        return ANONYMOUS
    return name if _SAFE_NAME.fullmatch(name) else OTHER


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._names: set[str] = set()
        self.operation_seconds = Histogram(
            "aipasta_graphql_operation_duration_seconds",
            "GraphQL operations, by type, name and outcome (ok or error).",
            ["type", "name", "outcome"],
            buckets=_FAST,
            registry=r,
        )
        self.operations = Counter(
            "aipasta_graphql_operations",
            "GraphQL operations by outcome and error code (none when it succeeded).",
            ["type", "outcome", "code"],
            registry=r,
        )
        self.provider_seconds = Histogram(
            "aipasta_provider_request_duration_seconds",
            "Chat requests to a provider, from the request to its last token.",
            ["provider", "model"],
            buckets=_SLOW,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "aipasta_provider_time_to_first_token_seconds",
            "Time from a chat request to a provider until its first token.",
            ["provider", "model"],
            buckets=_FAST,
            registry=r,
        )
        self.tokens_per_second = Histogram(
            "aipasta_provider_tokens_per_second",
            "Completion tokens per second after the first token.",
            ["provider", "model"],
            buckets=_RATE,
            registry=r,
        )
        self.provider_failures = Counter(
            "aipasta_provider_failures",
            "Failed chat runs by provider, model and status (the HTTP status, or the code).",
            ["provider", "model", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "aipasta_tokens",
            "Tokens by provider, model and kind: prompt, completion, and the reasoning "
            "(part of completion), cached and cache_write (part of prompt) tokens.",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "aipasta_cost_usd",
            "Cost in USD of the chat runs by provider and model.",
            ["provider", "model"],
            registry=r,
        )
        self.catalog_lookups = Counter(
            "aipasta_catalog_lookups",
            "Catalog reads: hit (served from memory) or miss (a provider was asked).",
            ["result"],
            registry=r,
        )
        self.catalog_refreshes = Counter(
            "aipasta_catalog_refreshes", "Forced catalog refreshes (admin).", registry=r
        )
        self.rate_limited = Counter(
            "aipasta_rate_limited_requests",
            "Requests refused by a rate limit, by scope (flood, ip, user).",
            ["scope"],
            registry=r,
        )
        for scope in RATE_LIMIT_SCOPES:
            self.rate_limited.labels(scope)  # every scope is served from the start, at 0
        self.websockets = Gauge(
            "aipasta_websockets_open", "Websocket connections open now.", registry=r
        )
        # Health reads which provider's key was refused last.
        self.outcomes = ChatOutcomes()
        self._scraped = _StateCollector()
        r.register(self._scraped)

    def watch(self, services: Services) -> None:
        """Read `services`' state at scrape time."""
        self._scraped.services = services

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def operation_name(self, name: str | None) -> str:
        """`safe_name`, and only the first MAX_OPERATION_NAMES names seen (then "other")."""
        label = safe_name(name)
        if label in self._names or label in (ANONYMOUS, OTHER):
            return label
        if len(self._names) >= MAX_OPERATION_NAMES:
            return OTHER
        self._names.add(label)
        return label

    def operation_done(
        self, *, type: str, name: str | None, code: str | None, seconds: float
    ) -> None:
        outcome = "ok" if code is None else "error"
        label = self.operation_name(name)
        self.operation_seconds.labels(type, label, outcome).observe(seconds)
        self.operations.labels(type, outcome, code or "none").inc()

    def run_done(self, result: RunResult) -> None:
        """A chat run ended: its latency, tokens, cost, and failure if any (also noted
        for the operation's log line)."""
        self.outcomes.record(result)
        facts = current_operation()
        if facts is not None:
            facts.note_run(result)
        provider, model = result.model.provider, result.model.id
        self.provider_seconds.labels(provider, model).observe(result.latency_ms / 1000)
        first = result.time_to_first_token_ms
        if first is not None:
            self.first_token_seconds.labels(provider, model).observe(first / 1000)
            generating = (result.latency_ms - first) / 1000
            if generating > 0 and result.usage.completion_tokens > 0:
                rate = result.usage.completion_tokens / generating
                self.tokens_per_second.labels(provider, model).observe(rate)
        usage = result.usage
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("reasoning", usage.reasoning_tokens),
            ("cached", usage.cached_prompt_tokens),
            ("cache_write", usage.cache_write_tokens),
        ):
            # An upstream's garbage count (negative) would make the counter raise.
            self.tokens.labels(provider, model, kind).inc(max(count, 0))
        if result.cost.known and result.cost.total_cost > Decimal(0):
            self.cost.labels(provider, model).inc(float(result.cost.total_cost))
        if result.error is not None:
            status = getattr(result.error, "status", None)
            label = str(status) if status is not None else result.error.code.value
            self.provider_failures.labels(provider, model, label).inc()

    def catalog_read(self, *, cached: bool) -> None:
        self.catalog_lookups.labels("hit" if cached else "miss").inc()


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)


class _StateCollector(Collector):
    """What the services already know, read when scraped."""

    services: Services | None = None

    def describe(self) -> list[Metric]:
        return []  # unchecked: the samples depend on the services watched

    def collect(self) -> Iterator[Metric]:
        services = self.services
        if services is None:
            return
        usage, limiter = services.usage, services.rate_limiter
        database_up = services.database is not None and services.database.available
        yield _gauge(
            "aipasta_uptime_seconds",
            "Seconds since the server started.",
            round(time.monotonic() - services.started_at, 3),
        )
        yield _gauge("aipasta_database_up", "1 when MongoDB is connected.", int(database_up))
        round_trip = services.database.round_trip_seconds if services.database else None
        if round_trip is not None:
            yield _gauge(
                "aipasta_database_ping_seconds",
                "Round trip to MongoDB: the driver's moving average over its heartbeats.",
                round_trip,
            )
        process = services.database_process
        yield _counter(
            "aipasta_embedded_database_restarts",
            "Times the embedded database's process was started again (0 without one).",
            process.restarts if process is not None else 0,
        )
        yield _gauge(
            "aipasta_usage_records_pending", "Usage records waiting to be written.", usage.pending
        )
        history = services.history_backlog
        yield _gauge(
            "aipasta_history_writes_pending",
            "Answers whose history write waits for the database.",
            history.pending,
        )
        yield _counter(
            "aipasta_history_writes_dropped",
            "History writes dropped because their queue was full.",
            history.dropped,
        )
        yield _counter(
            "aipasta_usage_records_written",
            "Usage records written to MongoDB.",
            usage.written,
        )
        yield _counter(
            "aipasta_usage_records_dropped",
            "Usage records dropped because the buffer was full.",
            usage.dropped,
        )
        yield _counter(
            "aipasta_usage_records_rejected",
            "Usage records MongoDB refused as invalid.",
            usage.rejected,
        )
        yield _counter(
            "aipasta_rate_limit_store_failures",
            "Rate-limit checks let through because the limiter's store failed.",
            limiter.store_failures,
        )
        yield _gauge(
            "aipasta_rate_limit_store_up",
            "1 when the rate limiter's store answered last time (always 1 in memory).",
            int(limiter.store_up),
        )
        yield _gauge(
            "aipasta_rate_limit_store_shared",
            "1 when the rate limits are counted in a store shared with other processes.",
            int(limiter.store_shared),
        )
        yield _gauge("aipasta_open_streams", "Chat streams open now.", limiter.open_streams_total)
        yield _gauge(
            "aipasta_background_tasks",
            "Bookkeeping (usage, history writes) of finished or cancelled streams still running.",
            services.background.running,
        )
        yield from self._catalog(services)

    @staticmethod
    def _catalog(services: Services) -> Iterator[Metric]:
        providers = services.catalog.snapshot().providers
        models = GaugeMetricFamily(
            "aipasta_catalog_models", "Models in each provider's current list.", labels=["provider"]
        )
        status = GaugeMetricFamily(
            "aipasta_catalog_provider_status",
            "1 for each provider's catalog status (ok, stale, loading, error).",
            labels=["provider", "status"],
        )
        for p in providers:
            models.add_metric([p.provider], p.model_count)
            for name in CATALOG_STATUSES:
                status.add_metric([p.provider, name], int(p.status == name))
        available = GaugeMetricFamily(
            "aipasta_provider_up",
            "1 when a provider can serve chat now (its list is known, its key not refused).",
            labels=["provider"],
        )
        for state in provider_states(services):
            available.add_metric([state.name], int(can_serve(state)))
        yield models
        yield status
        yield available


def render_metrics(services: Services) -> bytes:
    return services.metrics.render()
