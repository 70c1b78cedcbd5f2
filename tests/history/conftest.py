"""Run the real schema for the history tests, as a chosen user, on the embedded MongoDB.

Requests skip HTTP and authentication: each builds the Context the GraphQL view would,
with the identity set directly, so a test says exactly who is asking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.requests import Request
from strawberry.types import ExecutionResult

from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models
from resolvers.context import Context, Services
from resolvers.identity.identity import Identity
from schema.build import build_schema
from tests.conftest import make_settings
from tests.support.errors import without_request_id

SAVE = """
mutation Save($input: SaveMessageInput!) {
  saveMessage(input: $input) {
    id sessionId content isUser role model timestamp cost modelCount status
    attachments { kind url name mimeType }
  }
}
"""
HISTORY = """
query History($sessionId: ID!, $last: Int, $before: String) {
  chatHistory(sessionId: $sessionId, last: $last, before: $before) {
    nodes { id sessionId content isUser role timestamp cost }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
SESSIONS = """
query Sessions($first: Int, $after: String) {
  chatSessions(first: $first, after: $after) {
    nodes { id title messageCount lastMessage totalCost createdAt updatedAt }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
DELETE = "mutation Delete($sessionId: ID!) { deleteChatSession(sessionId: $sessionId) }"
RENAME = """
mutation Rename($sessionId: ID!, $title: String!) {
  renameChatSession(sessionId: $sessionId, title: $title) {
    id title messageCount updatedAt
  }
}
"""

_SCHEMA = build_schema()


class HistoryClient:
    """Executes operations against the real schema as "alice", "bob" or nobody."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def context(self, user: str | None) -> Context:
        request = Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)})
        return Context(
            services=self.services,
            request=request,
            response=None,
            request_id="req-history",
            identity=None if user is None else Identity(user_id=user),
        )

    async def run(
        self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = "alice"
    ) -> ExecutionResult:
        return await _SCHEMA.execute(
            query, variable_values=variables, context_value=self.context(user)
        )

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = "alice"
    ) -> dict[str, Any]:
        result = await self.run(query, variables, user=user)
        assert not result.errors, result.errors
        assert result.data is not None
        return result.data

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, *, user: str | None = "alice"
    ) -> dict[str, Any]:
        """The one error of a failed operation, as the client sees it."""
        result = await self.run(query, variables, user=user)
        assert result.data is None, result.data
        (error,) = result.errors or []
        return {"message": error.message, **without_request_id(error.extensions, "req-history")}

    async def save(
        self, session_id: str, content: str, *, user: str = "alice", **fields: Any
    ) -> dict[str, Any]:
        payload = {"sessionId": session_id, "content": content, "isUser": True, **fields}
        data = await self.data(SAVE, {"input": payload}, user=user)
        message: dict[str, Any] = data["saveMessage"]
        return message

    async def history(self, session_id: str, *, user: str = "alice", **args: Any) -> Any:
        data = await self.data(HISTORY, {"sessionId": session_id, **args}, user=user)
        return data["chatHistory"]

    async def sessions(self, *, user: str = "alice", **args: Any) -> Any:
        return (await self.data(SESSIONS, args, user=user))["chatSessions"]


def make_services(settings: Settings, database: Database | None) -> Services:
    """Real Services for the history fields, which use only the settings and the database.

    The other services (HTTP client, catalog, sign-in) are left as None, whatever they
    are, so these tests do not change each time a service is added.
    """
    unused: dict[str, Any] = {
        f.name: None
        for f in dataclasses.fields(Services)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return Services(**{**unused, "settings": settings, "database": database, "version": "test"})


@pytest.fixture
def history_settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        AIPASTA_MAX_CONTENT_CHARS=200,
        AIPASTA_MAX_ATTACHMENTS=2,
        AIPASTA_MAX_DATA_URL_BYTES=64,
    )


@pytest.fixture
def client(history_settings: Settings, database: Database) -> HistoryClient:
    return HistoryClient(make_services(history_settings, database))


def session_ids(page: dict[str, Any]) -> list[str]:
    return [node["id"] for node in page["nodes"]]


@pytest_asyncio.fixture
async def unreachable_database() -> AsyncIterator[Database]:
    """A Database whose MongoDB never answers (a closed loopback port), started."""
    database = Database(
        "mongodb://127.0.0.1:9/?directConnection=true",
        db_name="unreachable",
        document_models=document_models(),
        connect_timeout_ms=200,
        operation_timeout_ms=200,
    )
    await database.start()
    assert not database.available
    yield database
    await database.close()
