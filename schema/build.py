"""The one place the GraphQL schema is assembled."""

from __future__ import annotations

import functools

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from aipasta.settings import Settings
from resolvers.monitoring.operation_facts import operation_request_id
from schema.admin import AdminMutation, AdminQuery
from schema.errors import log_error
from schema.mutation import Mutation
from schema.operation import GatewayOperation, OperationRules
from schema.query import Query
from schema.strawberry_seams import convert_inputs_fast
from schema.stream_events import EventExecutor
from schema.subscription import Subscription


class GatewaySchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry calls this once per error, before PublicErrors rewrites it."""
        context = execution_context.context if execution_context else None
        request_id = operation_request_id(getattr(context, "request_id", None))
        for error in errors:
            log_error(error, request_id)


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the limits of `settings`; None means the development defaults
    (the built-in values, no environment read), which is what the SDL export uses."""
    if settings is None:
        settings = Settings.model_construct()
    rules = OperationRules.from_settings(settings)
    schema = GatewaySchema(
        query=merge_types("Query", (Query, AdminQuery)),
        mutation=merge_types("Mutation", (Mutation, AdminMutation)),
        subscription=Subscription,
        # One extension does all of it: Strawberry's per-operation cost grows with each
        # extension (schema.operation).
        extensions=[functools.partial(GatewayOperation, rules)],
        # A subscription's delta events without a GraphQL execution each (same answers).
        execution_context_class=EventExecutor,
    )
    # Arguments of input types converted from a plan, not field by field per request.
    convert_inputs_fast(schema)
    return schema


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
