"""The Mutation root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

import strawberry

from resolvers.catalog import fields as catalog_fields
from resolvers.chat import fields as chat_fields
from resolvers.history import fields as history_fields
from schema.types.catalog import ModelCatalog
from schema.types.chat import ChatResult, CompareResult
from schema.types.history import ChatMessage, ChatSession


@strawberry.type
class Mutation:
    chat: ChatResult = strawberry.mutation(
        resolver=chat_fields.chat,
        description="One completion, returned whole.",
    )
    compare: list[CompareResult] = strawberry.mutation(
        resolver=chat_fields.compare,
        description=(
            "The same prompt to several models at once; one result per model, in input order."
        ),
    )
    save_message: ChatMessage = strawberry.mutation(resolver=history_fields.save_message)
    delete_chat_session: bool = strawberry.mutation(resolver=history_fields.delete_chat_session)
    rename_chat_session: ChatSession = strawberry.mutation(
        resolver=history_fields.rename_chat_session
    )
    refresh_models: ModelCatalog = strawberry.mutation(
        resolver=catalog_fields.refresh_models,
        description=(
            "Fetch the catalog from the providers now instead of waiting for the cache "
            "to expire. Admin only."
        ),
    )
