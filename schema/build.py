"""The one place the GraphQL schema is assembled."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from schema.admin import AdminMutation, AdminQuery
from schema.errors import PublicErrors
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=merge_types("Query", (Query, AdminQuery)),
        mutation=merge_types("Mutation", (Mutation, AdminMutation)),
        subscription=Subscription,
        extensions=[PublicErrors],
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
