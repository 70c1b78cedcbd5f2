"""GET /metrics: Prometheus text with the numbers an operator watches."""

from __future__ import annotations

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
