"""The Query root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

import strawberry

from resolvers.catalog import fields as catalog_fields
from resolvers.history import fields as history_fields
from resolvers.monitoring import health
from resolvers.usage import report as usage_report
from schema.types.catalog import Model, ModelCatalog, ModelConnection
from schema.types.health import Health
from schema.types.history import ChatMessageConnection, ChatSessionConnection
from schema.types.usage import UsageReport


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
    chat_sessions: ChatSessionConnection = strawberry.field(
        resolver=history_fields.chat_sessions,
        description="The signed-in user's chat sessions, most recently active first.",
    )
    chat_history: ChatMessageConnection = strawberry.field(
        resolver=history_fields.chat_history,
        description=(
            "Messages of one of the signed-in user's sessions, oldest first; "
            "`last`/`before` page backwards."
        ),
    )
    usage: UsageReport = strawberry.field(
        resolver=usage_report.usage,
        description=(
            "Token and cost totals for the signed-in user; `since` inclusive, `until` "
            "exclusive, days in UTC."
        ),
    )
