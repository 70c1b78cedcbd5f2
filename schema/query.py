"""The Query root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

import strawberry

from resolvers.catalog import fields as catalog_fields
from resolvers.history import fields as history_fields
from resolvers.history.fields import MessagePage, SessionPage
from resolvers.monitoring import health
from resolvers.usage import report as usage_report
from resolvers.usage.report import UsageReportView
from schema.history import ChatMessageConnection, ChatSessionConnection
from schema.types.catalog import Model, ModelCatalog, ModelConnection
from schema.types.health import Health
from schema.usage import UsageReport


@strawberry.type
class Query:
    health: Health = strawberry.field(resolver=health.health)
    models: ModelConnection = strawberry.field(
        resolver=catalog_fields.models,
        description="Filtered, paginated view of the merged model catalog.",
    )
    model: Model | None = strawberry.field(resolver=catalog_fields.model)
    model_catalog: ModelCatalog = strawberry.field(
        resolver=catalog_fields.model_catalog,
        description="The whole catalog grouped the way the model picker shows it.",
    )
    chat_sessions: SessionPage = strawberry.field(
        resolver=history_fields.chat_sessions,
        graphql_type=ChatSessionConnection,
        description="The signed-in user's chat sessions, most recently active first.",
    )
    chat_history: MessagePage = strawberry.field(
        resolver=history_fields.chat_history,
        graphql_type=ChatMessageConnection,
        description=(
            "Messages of one of the signed-in user's sessions, oldest first; "
            "`last`/`before` page backwards."
        ),
    )
    usage: UsageReportView = strawberry.field(
        resolver=usage_report.usage,
        graphql_type=UsageReport,
        description=(
            "Token and cost totals for the signed-in user; `since` inclusive, `until` "
            "exclusive, days in UTC."
        ),
    )
