"""GET /metrics: Prometheus text with the numbers an operator watches."""

from __future__ import annotations

from providers.chat import TokenUsage
from tests.history.test_answer_extras import MODEL, run_result, writer
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.server import StartApp


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_metrics_report_catalog_database_and_buffers(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    catalog_upstream.set("/hf/models", Reply(status=500, raw=b"down"))
    app = await start_app()
    await app.graphql("{ modelCatalog { cached } }")
    async with app.http.get(f"{app.base_url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    values = samples(text)
    assert values["aipasta_database_up"] == 1
    # The driver's round trip, with no health check asked for it.
    assert 0 < values["aipasta_database_ping_seconds"] < 5
    assert values['aipasta_catalog_models{provider="openrouter"}'] == 7
    assert values['aipasta_catalog_models{provider="huggingface"}'] == 0
    assert values['aipasta_catalog_provider_status{provider="openrouter",status="ok"}'] == 1
    assert values['aipasta_catalog_provider_status{provider="huggingface",status="error"}'] == 1
    assert values["aipasta_usage_records_pending"] == 0
    assert values["aipasta_rate_limit_store_failures_total"] == 0
    assert values["aipasta_open_streams"] == 0
    assert "# TYPE aipasta_usage_records_dropped_total counter" in text
    # Scraping asks nobody upstream.
    assert catalog_upstream.calls["/openrouter/models"] == 1
    await app.get("/metrics")
    assert catalog_upstream.calls["/openrouter/models"] == 1


async def test_metrics_without_the_database(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(
        MONGODB_URI="mongodb://127.0.0.1:9/?directConnection=true", AIPASTA_DB_TIMEOUT_MS=200
    )
    _, text = await app.get("/metrics")
    assert samples(text)["aipasta_database_up"] == 0
    assert "aipasta_database_ping_seconds" not in samples(text)


def tokens(kind: str) -> str:
    """The token counter's sample for `kind` of the test runs' model."""
    return f'aipasta_tokens_total{{kind="{kind}",model="{MODEL.id}",provider="openrouter"}}'


async def test_reasoning_and_cached_tokens_are_counted_by_provider_and_catalog_model(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    usage = TokenUsage(
        prompt_tokens=1000,
        completion_tokens=300,
        total_tokens=1300,
        reasoning_tokens=200,
        cached_prompt_tokens=800,
        cache_write_tokens=150,
    )
    plain = TokenUsage(prompt_tokens=7, completion_tokens=3, total_tokens=10)
    # Runs ending as a chat's do (without a session: usage and metrics only).
    exchange = writer(app.state["services"], session_id=None)
    for result in (
        run_result("a", usage=usage),
        run_result("b", usage=usage),
        run_result("c", usage=plain),
    ):
        assert await exchange.finish(result) is None
    _, text = await app.get("/metrics")
    values = samples(text)
    assert {
        kind: values[tokens(kind)]
        for kind in ("prompt", "completion", "reasoning", "cached", "cache_write")
    } == {"prompt": 2007, "completion": 603, "reasoning": 400, "cached": 1600, "cache_write": 300}


async def test_a_garbage_negative_token_count_does_not_break_the_run_record(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    garbage = TokenUsage(prompt_tokens=5, completion_tokens=5, total_tokens=10, reasoning_tokens=-3)
    await writer(app.state["services"], session_id=None).finish(run_result("x", usage=garbage))
    _, text = await app.get("/metrics")
    values = samples(text)
    assert values[tokens("reasoning")] == 0
    assert values[tokens("completion")] == 5
