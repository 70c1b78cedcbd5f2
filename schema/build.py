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
from schema.errors import PublicErrors, log_error
from schema.guards import ExtensionFactory, guard_extensions
from schema.limits import DEFAULT_LIST_WEIGHT, QueryCost
from schema.mutation import Mutation
from schema.operation_log import OperationLog
from schema.query import Query
from schema.query_cache import CachedParse, CachedValidation
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
    # PublicErrors first: on the way out it runs last, after every guard has reported.
    # OperationLog outermost: it sees the operation's whole time, and errors made public.
    extensions: list[ExtensionFactory] = [
        OperationLog,
        functools.partial(PublicErrors, hide_suggestions=not settings.suggestions_enabled),
        *guard_extensions(settings),
        # Parsing and validating the same query text again is wasted work on every
        # request; the LRUs are module-level and bounded, the extensions per request.
        CachedParse,
        CachedValidation,
        # After validation: only a valid document is costed, with this request's variables.
        functools.partial(
            QueryCost, max_cost=settings.max_query_cost, default_list_weight=DEFAULT_LIST_WEIGHT
        ),
    ]
    return GatewaySchema(
        query=merge_types("Query", (Query, AdminQuery)),
        mutation=merge_types("Mutation", (Mutation, AdminMutation)),
        subscription=Subscription,
        extensions=extensions,
        # A subscription's delta events without a GraphQL execution each (same answers).
        execution_context_class=EventExecutor,
    )


def export_sdl() -> str:
    return build_schema().as_str() + "\n"
