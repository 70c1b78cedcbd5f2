"""Health endpoints, GraphiQL, and the one error format."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from aipasta.settings import Settings
from resolvers.context import Context, Services
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from schema.build import build_schema
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import StartApp


@pytest.mark.parametrize("path", ["/health", "/api/health"])
async def test_health_json_in_the_seed_format(
    start_app: StartApp, catalog_upstream: FakeUpstream, path: str
) -> None:
    app = await start_app()
    status, body = await app.get(path)
    assert status == 200
    assert body["status"] == "ok"
    assert body["services"] == {
        "database": "connected",
        "openrouter": "configured",
        "huggingface": "configured",
        "rateLimitStore": "memory",
    }
    assert body["version"] == "0.1.0"
    assert body["uptimeSeconds"] >= 0


async def test_health_is_degraded_without_provider_keys(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(
        OPENROUTER_API_KEY=None, HUGGINGFACE_API_KEY=None, AIPASTA_SIMULATOR="off"
    )
    _, body = await app.get("/health")
    assert body["status"] == "degraded"
    assert body["services"]["openrouter"] == "not_configured"
    graphql = await app.graphql("{ health { status services { huggingface } uptimeSeconds } }")
    assert graphql["data"]["health"]["status"] == "degraded"
    assert graphql["data"]["health"]["services"]["huggingface"] == "not_configured"


async def test_database_down_at_start(start_app: StartApp, catalog_upstream: FakeUpstream) -> None:
    app = await start_app(
        MONGODB_URI="mongodb://127.0.0.1:9/?directConnection=true",
        AIPASTA_DB_TIMEOUT_MS=200,
    )
    _, body = await app.get("/health")
    assert body["status"] == "degraded"
    assert body["services"]["database"] == "disconnected"
    catalog = await app.graphql("{ modelCatalog { stats { total } } }")
    assert catalog["data"]["modelCatalog"]["stats"]["total"] == 11
    again = await app.graphql("{ modelCatalog { cached } }")
    assert again["data"]["modelCatalog"]["cached"] is True


async def test_graphiql_in_development_only(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    dev = await start_app()
    async with dev.http.get(f"{dev.base_url}/graphql", headers={"Accept": "text/html"}) as r:
        assert r.status == 200
        assert "graphiql" in (await r.text()).lower()
    prod = await start_app(AIPASTA_ENV="production")
    async with prod.http.get(f"{prod.base_url}/graphql", headers={"Accept": "text/html"}) as r:
        assert r.status == 404 or "graphiql" not in (await r.text()).lower()


async def test_queries_over_get(start_app: StartApp, catalog_upstream: FakeUpstream) -> None:
    app = await start_app()
    async with app.http.get(
        f"{app.base_url}/graphql", params={"query": "{ health { status } }"}
    ) as response:
        body = await response.json()
        assert body["data"]["health"]["status"] == "ok"
        assert len(response.headers["X-Request-ID"]) == 32


async def test_syntax_and_validation_errors_keep_their_message(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app()
    syntax = await app.graphql("{ health { ")
    assert syntax["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Syntax Error" in syntax["errors"][0]["message"]
    unknown = await app.graphql("{ nosuchfield }")
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nosuchfield" in unknown["errors"][0]["message"]


class ExplodingCatalog:
    async def view(self, providers: object = None) -> None:
        raise RuntimeError("secret internals: mongodb://user:pw@host")


async def test_unexpected_errors_are_masked_with_a_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(_env_file=None)
    keys = ApiKeyStore(None)
    services = Services(
        settings=settings,
        http=None,  # type: ignore[arg-type]
        catalog=ExplodingCatalog(),  # type: ignore[arg-type]
        database=None,
        keys=keys,
        authenticator=Authenticator(settings, keys),
        version="test",
    )
    request = Request({"type": "http", "method": "POST", "headers": [], "client": ("1.2.3.4", 1)})
    context = Context(services=services, request=request, response=None, request_id="req-42")
    result = await build_schema().execute("{ modelCatalog { cached } }", context_value=context)
    (error,) = result.errors or []
    assert error.extensions == {"code": "INTERNAL", "requestId": "req-42"}
    assert "secret" not in error.message and "req-42" in error.message
    assert "secret internals" in caplog.text  # the details went to the log
