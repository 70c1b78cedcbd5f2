"""What an operator sees: metrics after real traffic, the /metrics token, the structured
operation lines, request ids, and health per provider."""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aipasta.logs import JsonFormatter, TextFormatter
from tests.streaming.conftest import (
    CHAT,
    CHAT_STREAM,
    MISTRAL,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    StreamApp,
    user_says,
    wait_until,
)
from tests.support.fake_upstream import FakeUpstream, Reply, answer, fixture_json, http_error
from tests.support.server import RunningApp, StartApp

SECRET = "the user's private words"
CLIENT_MODEL = "openrouter:made-up/client-string"


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def series(metric: str, /, **labels: str) -> str:
    """A sample's name as Prometheus text writes it (labels sorted)."""
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


async def metrics_text(app: RunningApp, **headers: str) -> tuple[int, str]:
    async with app.http.get(f"{app.base_url}/metrics", headers=headers) as response:
        return response.status, await response.text()


def chat(model: str = MISTRAL) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says(SECRET)}}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def test_metrics_count_chats_streams_and_errors_with_bounded_labels(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.default(MISTRAL_UPSTREAM, answer("Hello", " there", prompt_tokens=10, completion_tokens=5))
    app = await stream_app()
    assert "errors" not in await app.graphql(CHAT, chat())
    ws = await GraphQLWebSocket.open(app)
    try:
        assert samples((await metrics_text(app))[1])["aipasta_websockets_open"] == 1
        outcome = await ws.run(CHAT_STREAM, chat())
        assert outcome.events[-1]["__typename"] == "ChatCompleted"
    finally:
        await ws.close()
    failed = await app.graphql(CHAT, chat(CLIENT_MODEL))
    assert failed["errors"][0]["extensions"]["code"] == "MODEL_NOT_FOUND"
    await app.graphql(f"query {'q' * 80} {{ health {{ status }} }}")

    status, text = await metrics_text(app)
    assert status == 200
    values = samples(text)
    run = {"provider": "openrouter", "model": MISTRAL}
    assert values[series("aipasta_tokens_total", **run, kind="prompt")] == 20
    assert values[series("aipasta_tokens_total", **run, kind="completion")] == 10
    assert values[series("aipasta_provider_request_duration_seconds_count", **run)] == 2
    assert values[series("aipasta_provider_time_to_first_token_seconds_count", **run)] == 2
    operations = "aipasta_graphql_operations_total"
    assert values[series(operations, type="mutation", outcome="ok", code="none")] == 1
    refused = series(operations, type="mutation", outcome="error", code="MODEL_NOT_FOUND")
    assert values[refused] == 1
    durations = "aipasta_graphql_operation_duration_seconds_count"
    assert values[series(durations, type="subscription", name="ChatStream", outcome="ok")] == 1
    # A name a client made up too long for a label, and its raw model string, appear nowhere.
    assert 'name="other"' in text
    assert "q" * 80 not in text
    assert "made-up/client-string" not in text
    assert values[series("aipasta_catalog_lookups_total", result="hit")] >= 1

    async def closed() -> bool:
        return samples((await metrics_text(app))[1])["aipasta_websockets_open"] == 0

    assert await wait_until(closed)  # the server sees the socket closed soon after


async def test_a_failed_run_counts_a_provider_failure_by_status(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(402, "no credit"))
    app = await stream_app()
    await app.graphql(CHAT, chat())
    _, text = await metrics_text(app)
    failures = series(
        "aipasta_provider_failures_total", provider="openrouter", model=MISTRAL, status="402"
    )
    assert samples(text)[failures] == 1


async def test_the_metrics_token_guards_metrics_and_is_redacted(
    start_app: StartApp, catalog_upstream: FakeUpstream, logs: pytest.LogCaptureFixture
) -> None:
    token = "metrics-token-0123456789"
    app = await start_app(AIPASTA_METRICS_TOKEN=token)
    async with app.http.get(f"{app.base_url}/metrics") as response:
        assert response.status == 401
        body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert token not in json.dumps(body)
    wrong, _ = await metrics_text(app, Authorization="Bearer metrics-token-wrong")
    assert wrong == 401
    right, text = await metrics_text(app, Authorization=f"Bearer {token}")
    assert right == 200 and "aipasta_database_up 1.0" in text
    logging.getLogger("aipasta.test").warning("token is %s", token)
    assert token not in logs.text


async def test_each_operation_logs_one_structured_line_without_content(
    sse: FakeUpstream, stream_app: StreamApp, logs: pytest.LogCaptureFixture
) -> None:
    sse.default(MISTRAL_UPSTREAM, answer("Hi", prompt_tokens=7, completion_tokens=3, cost=0.25))
    app = await stream_app()
    logs.clear()
    async with app.http.post(
        f"{app.base_url}/graphql", json={"query": CHAT, "variables": chat()}
    ) as response:
        request_id = response.headers["X-Request-ID"]
    ws = await GraphQLWebSocket.open(app)
    try:
        await ws.run(CHAT_STREAM, chat())
    finally:
        await ws.close()
    records = [r for r in logs.records if r.name == "aipasta.operations"]
    assert len(records) == 2
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    mutation, stream = lines
    assert mutation["request_id"] == request_id
    assert (mutation["operation_type"], mutation["operation_name"]) == ("mutation", "Chat")
    assert (mutation["status"], mutation["error_code"]) == ("ok", None)
    assert mutation["model"] == MISTRAL
    assert (mutation["prompt_tokens"], mutation["completion_tokens"]) == (7, 3)
    assert mutation["cost"] == "0.25"
    assert mutation["duration_ms"] >= 0
    assert len(mutation["user"]) == 12 and "local" not in mutation["user"]
    # The websocket operation has an id of its own, also in its usage record.
    assert stream["operation_type"] == "subscription"
    assert stream["request_id"] != mutation["request_id"]
    assert SECRET not in logs.text
    assert all(SECRET not in TextFormatter().format(r) for r in records)


async def test_log_content_adds_the_variables(
    sse: FakeUpstream, stream_app: StreamApp, logs: pytest.LogCaptureFixture
) -> None:
    sse.default(MISTRAL_UPSTREAM, answer("Hi"))
    app = await stream_app(AIPASTA_LOG_CONTENT="true")
    await app.graphql(CHAT, chat())
    (record,) = [r for r in logs.records if r.name == "aipasta.operations"]
    assert SECRET in JsonFormatter().format(record)


@pytest.mark.parametrize("path", ["/graphql?query={health{status}}", "/health", "/metrics"])
async def test_every_response_has_a_request_id_and_only_a_trusted_proxy_picks_it(
    start_app: StartApp, catalog_upstream: FakeUpstream, path: str
) -> None:
    untrusted = await start_app()
    trusted = await start_app(AIPASTA_TRUSTED_PROXIES="127.0.0.1")

    async def answered_id(app: RunningApp, incoming: str) -> str:
        async with app.http.get(
            f"{app.base_url}{path}", headers={"X-Request-ID": incoming}
        ) as response:
            return response.headers["X-Request-ID"]

    assert await answered_id(untrusted, "proxy-id-1") != "proxy-id-1"
    assert await answered_id(trusted, "proxy-id-1") == "proxy-id-1"
    for unsafe in ("two words", "x" * 129, "a\tb"):
        made = await answered_id(trusted, unsafe)
        assert made != unsafe and len(made) == 32


async def test_health_says_key_rejected_after_a_401_and_degrades_without_another_provider(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(401, "invalid key"))
    app = await stream_app(HUGGINGFACE_API_KEY=None, AIPASTA_SIMULATOR="off")
    await app.graphql("{ modelCatalog { cached } }")
    _, before = await app.get("/health")
    assert before["status"] == "ok"
    await app.graphql(CHAT, chat())
    _, after = await app.get("/health")
    providers = {p["name"]: p for p in after["providers"]}
    assert providers["openrouter"]["state"] == "key_rejected"
    assert providers["openrouter"]["modelCount"] > 0
    assert providers["huggingface"]["configured"] is False
    assert after["status"] == "degraded"
    # The seed's keys are unchanged.
    assert after["services"]["openrouter"] == "configured"
    graphql = await app.graphql("{ health { status providers { name state lastError } } }")
    states = {p["name"]: p["state"] for p in graphql["data"]["health"]["providers"]}
    assert states["openrouter"] == "key_rejected"
    _, text = await metrics_text(app)
    assert samples(text)[series("aipasta_provider_up", provider="openrouter")] == 0


async def test_health_lists_a_provider_whose_catalog_failed_as_error(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    catalog_upstream.set("/hf/models", Reply(status=500, raw=b"down"))
    app = await start_app()
    await app.graphql("{ modelCatalog { cached } }")
    _, body = await app.get("/health")
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["huggingface"]["state"] == "error"
    assert providers["huggingface"]["lastError"]
    assert providers["openrouter"]["state"] == "ok"
    assert body["status"] == "ok"


async def test_health_says_key_rejected_after_a_401_on_the_catalog_fetch(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    catalog_upstream.set(
        "/hf/models", Reply(status=401, body={"error": "Invalid credentials in Authorization"})
    )
    app = await start_app()
    await app.graphql("{ modelCatalog { cached } }")
    _, body = await app.get("/health")
    providers = {p["name"]: p for p in body["providers"]}
    assert providers["huggingface"]["state"] == "key_rejected"
    assert providers["huggingface"]["lastError"]
    assert providers["openrouter"]["state"] == "ok"
    # Cleared by the next fetch that succeeds.
    catalog_upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    refreshed = await app.graphql("mutation { refreshModels { cached } }")
    assert "errors" not in refreshed, refreshed
    _, after = await app.get("/health")
    assert {p["name"]: p["state"] for p in after["providers"]}["huggingface"] == "ok"


DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json"
_SERIES = re.compile(r"\baipasta_[a-z0-9_]+")


async def test_every_series_the_dashboard_queries_is_served(
    sse: FakeUpstream, stream_app: StreamApp, catalog_upstream: FakeUpstream
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in _SERIES.findall(target["expr"])
    }
    sse.default(MISTRAL_UPSTREAM, answer("Hi", cost=0.01))
    sse.script(MISTRAL_UPSTREAM, http_error(500, "down"), http_error(500, "down"))
    app = await stream_app()
    await app.graphql(CHAT, chat())  # fails: a provider failure
    await app.graphql(CHAT, chat())  # answers: tokens, cost, latencies
    await app.graphql("mutation { refreshModels { cached } }")
    await app.get("/health")
    _, text = await metrics_text(app)
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert queried and queried <= served, sorted(queried - served)


def test_text_lines_write_each_field_as_json_would_and_the_local_time() -> None:
    fields: dict[str, Any] = {
        "none": None,
        "yes": True,
        "no": False,
        "count": 7,
        "negative": -3,
        "ms": 12.5,
        "big": 1e20,
        "nan": float("nan"),
        "word": "ok",
        "spaced": "two words",
        "quoted": 'say "hi"',
        "empty": "",
        "list": [1, "a b"],
        "decimal": Decimal("0.25"),
    }
    record = logging.LogRecord("aipasta.operations", logging.INFO, __file__, 1, "%s", ("x",), None)
    record.created = 1_700_000_000.25
    record.msecs = 250.0
    record.fields = fields
    formatter = TextFormatter()
    line = formatter.format(record)
    expected_time = logging.Formatter().formatTime(record)
    assert line.startswith(f"{expected_time} INFO aipasta.operations: x ")
    assert line.split(": x ", 1)[1] == (
        "none=null yes=true no=false count=7 negative=-3 ms=12.5 big=1e+20 nan=NaN word=ok "
        'spaced="two words" quoted="say \\"hi\\"" empty="" list="[1, \\"a b\\"]" '
        'decimal="\\"0.25\\""'
    )
    # The next second's line has the next second's time.
    record.created += 1
    assert formatter.format(record).startswith(logging.Formatter().formatTime(record))
