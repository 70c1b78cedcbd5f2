"""What every GraphQL operation must pass before a resolver runs.

Over every transport (POST, GET, websockets) alike, since they live in the schema:
- at most `max_tokens` tokens (the parser stops counting there: a huge document costs
  no more than the limit), `max_depth` levels and `max_aliases` aliases, measured in
  work linear in the document (schema.limits; the cost limit runs after validation);
- no schema introspection unless enabled (production turns it off);
- subscriptions only where they stream, over websockets or GraphQL over SSE
  (`Accept: text/event-stream`, aipasta.edge.sse): in a plain JSON POST one would run
  as a query and fail inside its resolver;
- no NUL characters or unpaired surrogates in any string, whether a literal in the
  document or anywhere in the variables (MongoDB cannot store a lone surrogate, C
  consumers truncate at NUL). The resolvers check the fields they store too; checking
  here as well covers every argument, including ones that are never stored.

Each refusal is a GraphQL error with `extensions.code` BAD_USER_INPUT (see schema.errors),
and the operation is not executed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    StringValueNode,
    ValidationRule,
    ValueNode,
    VariableDefinitionNode,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from starlette.websockets import WebSocket
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from aipasta.settings import Settings
from schema.errors import bad_input
from schema.limits import shape_rule

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
# Where the offending string sits when it is not under a name (a bad variable name).
VARIABLES = "variables"


def guard_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    """The validation rules the guards add to graphql-core's and Strawberry's, in order."""
    rules: list[type[ASTValidationRule]] = [
        shape_rule(settings.max_depth, settings.max_aliases),
        SafeStringLiterals,
    ]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def is_unsafe(text: str) -> bool:
    # A well-formed surrogate pair arrives from JSON as one code point, so any
    # surrogate left in a Python str is unpaired.
    return _UNSAFE.search(text) is not None


def unsafe_variable(variables: Mapping[str, Any] | None) -> str | None:
    """Where the first unsafe string (value or key) is, named the way the resolvers name
    fields (`input.messages[0].content`), so either layer reports it alike."""
    stack: list[tuple[str, object]] = []
    for name, value in (variables or {}).items():
        if is_unsafe(name):
            return VARIABLES
        stack.append((name, value))
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if is_unsafe(value):
                return path
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if is_unsafe(str(key)):
                    return path  # the key itself is never echoed back
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
    return None


def unsafe_literal(value: ValueNode, path: str) -> str | None:
    """The same for a literal in the document: an argument's value or a default."""
    stack: list[tuple[str, ValueNode]] = [(path, value)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, StringValueNode):
            if is_unsafe(value.value):
                return path
        elif isinstance(value, ObjectValueNode):
            stack.extend((f"{path}.{field.name.value}", field.value) for field in value.fields)
        elif isinstance(value, ListValueNode):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value.values))
    return None


def unsafe_string_error(field: str, nodes: list[Node] | None = None) -> GraphQLError:
    # The resolvers' wording (resolvers.validation.check_text) for the same fault.
    return bad_input(
        f"`{field}` contains a NUL byte or an invalid character",
        nodes=nodes,
        details={"field": field},
    )


class SafeStringLiterals(ValidationRule):
    """Literals in the document. The lexer refuses raw lone surrogates itself, but a raw
    NUL inside quotes or a `\\u0000` escape reaches the value."""

    def enter_argument(self, node: ArgumentNode, *_args: object) -> None:
        self._check(node, node.value, node.name.value)

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: object) -> None:
        if node.default_value is not None:
            self._check(node, node.default_value, node.variable.name.value)

    def _check(self, node: Node, value: ValueNode, name: str) -> None:
        where = unsafe_literal(value, name)
        if where is not None:
            self.report_error(unsafe_string_error(where, [node]))


def refusal_before_validation(context: ExecutionContext) -> list[GraphQLError] | None:
    """The answer to an operation the guards refuse before validating it, or None.

    Unsafe strings in the variables; a subscription neither over a websocket nor over
    GraphQL over SSE."""
    where = unsafe_variable(context.variables)
    if where is not None:
        return [unsafe_string_error(where)]
    request = getattr(context.context, "request", None)
    if (
        context.operation_type is OperationType.SUBSCRIPTION
        and not isinstance(request, WebSocket)
        and not getattr(context.context, "over_sse", False)
    ):
        return [
            bad_input(
                "Subscriptions run over websockets or Server-Sent Events: connect to "
                "/graphql with the graphql-transport-ws protocol, or send the request "
                "with `Accept: text/event-stream`"
            )
        ]
    return None
