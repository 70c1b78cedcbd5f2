"""Everything the gateway takes from Strawberry beyond its documented API, in one module.

strawberry-graphql is pinned to one minor release (pyproject.toml): a 0.x minor may change
any of what follows. tests/contract/test_strawberry_seams.py checks each seam against the
installed release, a test per seam, named after it; raise the pin once they pass.

Why in schema/: the schema's extensions use some seams and the HTTP/websocket edge
(aipasta.edge) the others, and schema/ is the one layer both may import (the edge sits
above it). aipasta.settings, a leaf that imports nothing of the project, takes its one
seam straight from Strawberry (below, tested like the rest).

The seams:
- `validate` and `core_schema`: Strawberry's own validation (graphql-core's rules plus
  Strawberry's) and the graphql-core schema a Strawberry schema wraps (`Schema._schema`),
  which schema.query_cache caches results by.
- Extensions may do Strawberry's work for it: Strawberry does not parse when an
  `on_operation` hook set `execution_context.graphql_document` before its `yield`, and
  does not validate when an `on_validate` hook set `pre_execution_errors` (`[]`
  included); refusals set there are the operation's answer. schema.operation (with
  schema.query_cache and schema.guards) relies on both.
- `closes_websocket`: the errors Strawberry's graphql-transport-ws handler answers by
  closing the socket (4400); it tells them by their type, so schema.errors leaves them
  unchanged. `CannotGetOperationTypeError` is also what `ExecutionContext.operation_type`
  raises when the document lacks the operation (schema.operation_log).
- `BaseGraphQLTransportWSHandler` and its message types (not public API): subclassed by
  aipasta.edge.ws_protocol, through the view's `graphql_transport_ws_handler_class`.
- The ASGI view's own methods that aipasta.edge.answer_cache and aipasta.edge.graphql_view
  override: `execute_single` (one operation of a request, with its context),
  `create_response`, and `parse_json`, which wraps what `decode_json` raises in a 400
  `HTTPException` with the decoder's error as `__cause__`. The early reply of a kept
  answer (aipasta.edge.answer_cache) asks the view what Strawberry itself would: whether
  an `Accept` header chooses a streaming transport (`_get_stream_transport_from_headers`,
  not public) and what a GET's query parameters say (`parse_query_params`, variables
  decoded). `AsyncHTTPRequestAdapter` and
  `HTTPException` come from cross_web, Strawberry's HTTP layer (its dependency, not ours).
- GraphQL over SSE (aipasta.edge.sse): the view's `execute_operation` (one request's
  operation, whose `GraphQLRequestData.protocol` is `SSETransport.protocol` when its
  `Accept` chose Strawberry's SSE transport; a stream comes back as a
  `SubscriptionExecutionResult`) and `create_streaming_response` (the response for that
  stream's text, heartbeats merged in); `SSETransport` (strawberry.http.streaming) writes
  graphql-sse's `next` and `complete` events.
- Subscription events (schema.stream_events): `CoreExecutionContext`, the graphql-core
  executor class Strawberry executes with by default (its `execution_context_class`),
  subclassed there; `strawberry_class`, the Python class a graphql-core object type was
  made from; `plain_attribute`, the attribute a field without resolver or extensions reads
  (with Strawberry's default resolver, `getattr`); `is_default_resolver`, whether a
  graphql-core field's `resolve` is Strawberry's plain attribute read (a basic field, no
  exception handlers), which Strawberry marks `_is_default`.
- Input conversion (`convert_inputs_fast`, schema.build): a type definition's `from_input`
  (documented for integrations that build their own values) builds a value of the type
  from its GraphQL input value, with `InputContext.convert` for anything else. Strawberry
  converts each input field through `convert_argument`, resolving its type and naming it
  again on every request; ours does the same conversion from a plan made once per
  schema: the same fields, names, copies of lists, `None`/`UNSET` and dataclass built,
  with Strawberry's own `_is_leaf_type`/`_is_optional_leaf_type` deciding what is left
  as it is. Types with a `Maybe` field keep Strawberry's conversion (a type that sets
  `from_input` is not checked for `Maybe` nulls).
- `normalize_allowed_origins` (strawberry.http.websocket_origin): how the view reads
  `allowed_origins`, used by aipasta.settings to refuse a bad value at start.

OVERRIDES names every member of a Strawberry class that a class of ours overrides (a test
fails on an override missing here), USES the members we call or read without overriding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import strawberry
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
)
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLRequestData
from strawberry.http.streaming import SSETransport
from strawberry.relay import GlobalID
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionContext
from strawberry.types.arguments import InputContext, _is_leaf_type, _is_optional_leaf_type
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import has_enum_definition
from strawberry.types.field import StrawberryField
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

__all__ = [
    "OVERRIDES",
    "USES",
    "AsyncHTTPRequestAdapter",
    "BaseGraphQLTransportWSHandler",
    "CannotGetOperationTypeError",
    "ConnectionInitMessage",
    "CoreExecutionContext",
    "HTTPException",
    "Message",
    "SSETransport",
    "SubscribeMessage",
    "closes_websocket",
    "convert_inputs_fast",
    "core_schema",
    "is_default_resolver",
    "plain_attribute",
    "strawberry_class",
    "validate",
]

CoreExecutionContext = StrawberryGraphQLCoreExecutionContext
_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema that `schema` executes with."""
    return schema._schema


def validate(
    schema: GraphQLSchema, document: DocumentNode, rules: Sequence[type[ASTValidationRule]]
) -> list[GraphQLError]:
    """`document` validated as Strawberry validates it: `rules` and Strawberry's own."""
    return validate_document(schema, document, tuple(rules))


def closes_websocket(error: GraphQLError) -> bool:
    """Whether Strawberry's graphql-transport-ws handler, given `error` as an operation's
    first error, closes the socket (4400) instead of answering with an `error` message."""
    return BaseGraphQLTransportWSHandler._get_pre_execution_close_reason(error) is not None


def strawberry_class(object_type: GraphQLObjectType) -> type | None:
    """The class Strawberry made `object_type` from (None for any other type)."""
    definition = (object_type.extensions or {}).get(_BACKREF)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.is_graphql_generic:
        return None
    return definition.origin


def plain_attribute(field: GraphQLField) -> str | None:
    """The attribute `field` reads when it has no resolver and no field extensions and
    reads with Strawberry's default resolver; None otherwise."""
    definition = (field.extensions or {}).get(_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
        return None
    if definition.default_resolver is not getattr:
        return None
    return definition.python_name


def is_default_resolver(resolve: object) -> bool:
    """Whether a graphql-core field's `resolve` is Strawberry's plain attribute read."""
    return getattr(resolve, "_is_default", False) is True


_Convert = Callable[[object, InputContext, tuple[str | int, ...]], object]


def _unless_null(convert: _Convert) -> _Convert:
    # convert_argument answers null and UNSET as they are, whatever the type.
    def converted(value: object, context: InputContext, path: tuple[str | int, ...]) -> object:
        if value is None or value is UNSET:
            return value
        return convert(value, context, path)

    return converted


def _as_strawberry(type_: object) -> _Convert:
    def converted(value: object, context: InputContext, path: tuple[str | int, ...]) -> object:
        return context.convert(value, type_, *path)  # type: ignore[arg-type]

    return converted


def _list_of(convert: _Convert | None) -> _Convert:
    def converted(value: object, context: InputContext, path: tuple[str | int, ...]) -> object:
        items = cast("Iterable[object]", value)
        if convert is None:
            # Copied: graphql-core gives every request that omits the value the same default.
            return list(items)
        return [convert(item, context, (*path, index)) for index, item in enumerate(items)]

    return _unless_null(converted)


def _converter(type_: object, registry: Mapping[object, Any]) -> _Convert | None:
    """How `convert_argument` converts a value of `type_`; None: it leaves it as it is."""
    if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
        return _as_strawberry(type_)
    if isinstance(type_, StrawberryOptional):
        inner = _converter(type_.of_type, registry)
        return None if inner is None else _unless_null(inner)
    if isinstance(type_, StrawberryList):
        item = type_.of_type
        if _is_leaf_type(item, registry, skip_classes=(GlobalID,)) or _is_optional_leaf_type(
            item, registry, skip_classes=(GlobalID,)
        ):
            return _list_of(None)
        return _list_of(_converter(item, registry))
    if _is_leaf_type(type_, registry):  # type: ignore[arg-type]
        return None
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), registry)
    if has_enum_definition(type_):
        return None
    if has_object_definition(type_):
        builder = type_.__strawberry_definition__.from_input
        if isinstance(builder, _InputBuilder):
            cls: type = type_
            return _unless_null(
                lambda value, context, path: builder.build(cls, value, context, path)  # type: ignore[arg-type]
            )
    return _as_strawberry(type_)


class _InputBuilder:
    """`from_input` for an input type: what Strawberry's conversion does, planned once."""

    def __init__(self, definition: StrawberryObjectDefinition) -> None:
        self.definition = definition
        self._made_for: tuple[object, object] | None = None
        self._fields: list[tuple[str, str, _Convert | None]] = []
        self._implicit: dict[str, None] = {}

    def __call__(self, cls: type, value: Mapping[str, Any], context: InputContext) -> object:
        return self.build(cls, value, context, ())

    def _plan(self, context: InputContext) -> None:
        definition = self.definition
        name_of = context.config.name_converter.from_field
        registry = context.scalar_registry
        self._fields = [
            (
                name_of(field),
                field.python_name,
                _converter(field.resolve_type(type_definition=definition), registry),
            )
            for field in definition.fields
        ]
        # Strawberry's implicit None for fields without a default (required ones are
        # always in the value).
        self._implicit = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        }
        self._made_for = (context.config, registry)

    def build(
        self,
        cls: type,
        value: Mapping[str, Any],
        context: InputContext,
        path: tuple[str | int, ...],
    ) -> object:
        made_for = self._made_for
        if (
            made_for is None
            or made_for[0] is not context.config
            or made_for[1] is not (context.scalar_registry)
        ):
            self._plan(context)
        kwargs: dict[str, object] = dict(self._implicit)
        for name, python_name, convert in self._fields:
            if name in value:
                item = value[name]
                kwargs[python_name] = (
                    item if convert is None else convert(item, context, (*path, name))
                )
        return cls(**kwargs)


def convert_inputs_fast(schema: strawberry.Schema) -> None:
    """Gives every input type of `schema` without a `Maybe` field or a `from_input` of
    its own the planned conversion (once per type, whichever schema comes first)."""
    for concrete in list(schema.schema_converter.type_map.values()):
        definition = concrete.definition
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is not None or definition.is_graphql_generic:
            continue
        if any(isinstance(field.type, StrawberryMaybe) for field in definition.fields):
            continue
        definition.from_input = _InputBuilder(definition)


OVERRIDES: Mapping[type, frozenset[str]] = {
    # aipasta.edge.answer_cache.CachingGraphQL, aipasta.edge.graphql_view.GatewayGraphQL
    GraphQL: frozenset(
        {
            "execute_single",
            "create_response",
            # aipasta.edge.sse.ServerSentEvents
            "execute_operation",
            "create_streaming_response",
            "parse_json",
            "graphql_transport_ws_handler_class",
            # Documented hooks.
            "decode_json",
            "get_context",
            "on_ws_connect",
            "render_graphql_ide",
        }
    ),
    # aipasta.edge.ws_protocol.GatewayTransportWS
    BaseGraphQLTransportWSHandler: frozenset(
        {
            "handle",
            "handle_connection_init",
            "handle_message",
            "handle_subscribe",
            "send_message",
            "shutdown",
        }
    ),
    # schema.stream_events.EventExecutor (graphql-core's Executor methods)
    StrawberryGraphQLCoreExecutionContext: frozenset(
        {"build_per_event_executor", "execute_operation"}
    ),
    # schema.build.GatewaySchema (documented)
    strawberry.Schema: frozenset({"process_errors"}),
    # schema.operation.GatewayOperation (documented hooks; on_stream_result for streamed
    # results)
    SchemaExtension: frozenset({"on_operation", "on_validate", "on_stream_result"}),
}

USES: Mapping[type, frozenset[str]] = {
    GraphQL: frozenset(
        {
            "run",
            "process_result",
            "encode_json",
            # aipasta.edge.answer_cache's early reply, to tell what Strawberry would do
            # with a request before handing it over.
            "_get_stream_transport_from_headers",
            "parse_query_params",
        }
    ),
    GraphQLRequestData: frozenset({"protocol"}),
    StrawberryGraphQLCoreExecutionContext: frozenset(
        {"fragment_definitions", "hooks", "middleware_manager", "operation", "schema"}
    ),
    StrawberryField: frozenset({"default_resolver", "is_basic_field", "python_name"}),
    StrawberryObjectDefinition: frozenset(
        {"is_graphql_generic", "origin", "from_input", "fields", "is_input"}
    ),
    InputContext: frozenset({"convert", "config", "scalar_registry"}),
    strawberry.Schema: frozenset({"schema_converter"}),
    SSETransport: frozenset({"protocol", "encode_next", "encode_complete"}),
    BaseGraphQLTransportWSHandler: frozenset(
        {
            "cleanup_operation",
            "connection_acknowledged",
            "context",
            "handle_invalid_message",
            "max_subscriptions_per_connection",
            "operations",
            "websocket",
        }
    ),
    ExecutionContext: frozenset(
        {
            "context",
            "graphql_document",
            "operation_name",
            "operation_type",
            "parse_options",
            "pre_execution_errors",
            "query",
            "result",
            "schema",
            "validation_rules",
            "variables",
        }
    ),
}
