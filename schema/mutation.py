"""The Mutation root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

import strawberry

from resolvers import models as catalog_fields
from resolvers import pending
from resolvers.catalog import CatalogView
from schema.catalog import ModelCatalog
from schema.chat import ChatResult, CompareResult
from schema.history import ChatMessage, ChatSession


@strawberry.type
class Mutation:
    chat: ChatResult = strawberry.mutation(
        resolver=pending.chat, description="One completion, returned whole."
    )
    compare: list[CompareResult] = strawberry.mutation(
        resolver=pending.compare,
        description=(
            "The same prompt to several models at once; one result per model, in input order."
        ),
    )
    save_message: ChatMessage = strawberry.mutation(resolver=pending.save_message)
    delete_chat_session: bool = strawberry.mutation(resolver=pending.delete_chat_session)
    rename_chat_session: ChatSession = strawberry.mutation(resolver=pending.rename_chat_session)
    refresh_models: CatalogView = strawberry.mutation(
        resolver=catalog_fields.refresh_models,
        graphql_type=ModelCatalog,
        description=(
            "Fetch the catalog from the providers now instead of waiting for the cache "
            "to expire. Admin only."
        ),
    )
