"""The Mutation root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

import strawberry

from resolvers.catalog import fields as catalog_fields
from resolvers.chat import fields as chat_fields
from resolvers.chat.views import ChatResultView, CompareResultView
from resolvers.history import fields as history_fields
from resolvers.history.fields import MessageView, SessionView
from schema.chat import ChatResult, CompareResult
from schema.history import ChatMessage, ChatSession
from schema.types.catalog import ModelCatalog


@strawberry.type
class Mutation:
    chat: ChatResultView = strawberry.mutation(
        resolver=chat_fields.chat,
        graphql_type=ChatResult,
        description="One completion, returned whole.",
    )
    compare: list[CompareResultView] = strawberry.mutation(
        resolver=chat_fields.compare,
        graphql_type=list[CompareResult],
        description=(
            "The same prompt to several models at once; one result per model, in input order."
        ),
    )
    save_message: MessageView = strawberry.mutation(
        resolver=history_fields.save_message, graphql_type=ChatMessage
    )
    delete_chat_session: bool = strawberry.mutation(resolver=history_fields.delete_chat_session)
    rename_chat_session: SessionView = strawberry.mutation(
        resolver=history_fields.rename_chat_session, graphql_type=ChatSession
    )
    refresh_models: ModelCatalog = strawberry.mutation(
        resolver=catalog_fields.refresh_models,
        description=(
            "Fetch the catalog from the providers now instead of waiting for the cache "
            "to expire. Admin only."
        ),
    )
