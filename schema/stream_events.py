"""Subscription events without a GraphQL execution each, where the answer is certain.

graphql-core executes a subscription's selection set once per event: collecting the
fields, resolving the union's type, resolving and serializing each field. For the delta
events of `chatStream` and `compareStream` (nearly every event of a stream) that is most
of the event's cost, yet the answer is fixed by the document: a `__typename` and a few
plain attributes. `EventExecutor` (the schema's `execution_context_class`) works out,
once per subscription document (kept like the query cache), which response keys each
event type gets; each event whose type has such a plan is answered with the same `data`
that execution would give (the same keys in the same order, the same values), and every
other event is executed as before.

A type gets a plan only when nothing in its selection could change the answer: the
subscription's one root field and everything under it carry no directive; fragments have
no variables or arguments; every field selected on the type is `__typename` or a field
without a resolver, field extension or arguments, read with Strawberry's default resolver,
of type String, ID, Int, Float or Boolean, or an object type whose own selection meets the
same rules (`usage { completionTokens }`); and no schema extension wraps resolvers. An
event is answered by its plan only when every value is exactly what its type serializes
unchanged (`str`; `int` within GraphQL's 32-bit range; a finite `float`; `bool`; an
object of exactly the type's class), and null only where the field is nullable: anything
else (an error, a coercion such as an `int` for a Float) goes through execution. Lists,
enums and custom scalars always do (a ChatFailed's `code`, a ChatCompleted's `toolCalls`).
tests/streaming/test_stream_events.py compares both for every event type and for
selections with aliases, fragments and `__typename`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    GraphQLUnionType,
    InlineFragmentNode,
    OperationType,
    SelectionNode,
    get_named_type,
    is_abstract_type,
    type_from_ast,
)

from schema.query_cache import QUERY_CACHE_SIZE, DocumentCache
from schema.strawberry_seams import (
    CoreExecutionContext,
    is_default_resolver,
    plain_attribute,
    strawberry_class,
)

_MAX_INT = 2**31 - 1
_MIN_INT = -(2**31)


def _is_str(value: object) -> bool:
    return type(value) is str


def _is_int(value: object) -> bool:
    return type(value) is int and _MIN_INT <= value <= _MAX_INT


def _is_bool(value: object) -> bool:
    return type(value) is bool


def _is_float(value: object) -> bool:
    return type(value) is float and math.isfinite(value)


# graphql-core's serializers return these values unchanged.
_UNCHANGED: dict[object, Callable[[object], bool]] = {
    GraphQLString: _is_str,
    GraphQLID: _is_str,
    GraphQLInt: _is_int,
    GraphQLBoolean: _is_bool,
    GraphQLFloat: _is_float,
}

# One response key, as one of:
#   (key, None, type name, False, None): `__typename`;
#   (key, attribute, check, nullable, None): a leaf, whose value passes `check`;
#   (key, attribute, class, nullable, entries): an object of exactly `class`, and its keys.
_Entry = tuple[str, "str | None", Any, bool, "list[_Entry] | None"]

_NO = object()  # only execution can tell


def _fill(entries: list[_Entry], source: object) -> dict[str, Any] | object:
    out: dict[str, Any] = {}
    for key, attribute, check, nullable, nested in entries:
        if attribute is None:
            out[key] = check
            continue
        value = getattr(source, attribute)
        if value is None:
            if not nullable:
                return _NO
        elif nested is not None:
            if type(value) is not check:
                return _NO
            value = _fill(nested, value)
            if value is _NO:
                return _NO
        elif not check(value):
            return _NO
        out[key] = value
    return out


class _Unsure(Exception):
    """The selection holds something the plan does not reproduce exactly."""


class EventPlan:
    """For one subscription document: the response key of its root field, and for each
    event class with a plan, its response keys in execution's order."""

    def __init__(self, root_key: str, types: dict[type, list[_Entry]]) -> None:
        self.root_key = root_key
        self.types = types

    def data(self, event: object) -> dict[str, Any] | None:
        """The `data` of `event`'s result, or None when only execution can tell."""
        entries = self.types.get(type(event))
        if entries is None:
            return None
        out = _fill(entries, event)
        if out is _NO:
            return None
        return {self.root_key: out}


def event_plan(
    schema: GraphQLSchema,
    operation: Any,
    fragments: dict[str, FragmentDefinitionNode],
) -> EventPlan | None:
    """The plan for a subscription operation, or None when it has none at all."""
    if operation.operation is not OperationType.SUBSCRIPTION or operation.directives:
        return None
    selections = operation.selection_set.selections
    subscription = schema.subscription_type
    if len(selections) != 1 or subscription is None:
        return None
    root = selections[0]
    if not isinstance(root, FieldNode) or root.directives or root.selection_set is None:
        return None
    field = subscription.fields.get(root.name.value)
    if field is None:
        return None
    union = get_named_type(field.type)
    if not isinstance(union, GraphQLUnionType):
        return None
    types: dict[type, list[_Entry]] = {}
    for member in schema.get_possible_types(union):
        origin = strawberry_class(member)
        if origin is None:
            continue
        try:
            entries = _entries(schema, member, root.selection_set.selections, fragments)
        except _Unsure:
            continue
        types[origin] = entries
    if not types:
        return None
    key = root.alias.value if root.alias else root.name.value
    return EventPlan(key, types)


def _entries(
    schema: GraphQLSchema,
    member: GraphQLObjectType,
    selections: Sequence[SelectionNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> list[_Entry]:
    grouped: dict[str, list[FieldNode]] = {}
    for node in _collect(schema, member, selections, fragments, set()):
        key = node.alias.value if node.alias else node.name.value
        grouped.setdefault(key, []).append(node)
    entries: list[_Entry] = []
    for key, nodes in grouped.items():
        name = nodes[0].name.value
        if any(node.arguments for node in nodes):
            raise _Unsure
        if name == "__typename":
            entries.append((key, None, member.name, False, None))
            continue
        definition = member.fields.get(name)
        if definition is None or definition.args or not is_default_resolver(definition.resolve):
            raise _Unsure
        attribute = plain_attribute(definition)
        if attribute is None:
            raise _Unsure
        nullable = not isinstance(definition.type, GraphQLNonNull)
        of_type = definition.type if nullable else definition.type.of_type
        if isinstance(of_type, GraphQLObjectType):
            origin = strawberry_class(of_type)
            below = [n.selection_set.selections for n in nodes if n.selection_set is not None]
            if origin is None or len(below) != len(nodes):
                raise _Unsure
            inner = [selection for part in below for selection in part]
            nested = _entries(schema, of_type, inner, fragments)
            entries.append((key, attribute, origin, nullable, nested))
            continue
        check = _UNCHANGED.get(of_type)
        if check is None or any(node.selection_set is not None for node in nodes):
            raise _Unsure
        entries.append((key, attribute, check, nullable, None))
    return entries


def _collect(
    schema: GraphQLSchema,
    member: GraphQLObjectType,
    selections: Sequence[SelectionNode],
    fragments: dict[str, FragmentDefinitionNode],
    visited: set[str],
) -> Iterator[FieldNode]:
    """The field nodes that apply to `member`, in graphql-core's collection order."""
    for selection in selections:
        if selection.directives:
            raise _Unsure
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            if _applies(schema, member, selection.type_condition):
                yield from _collect(
                    schema, member, selection.selection_set.selections, fragments, visited
                )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if getattr(selection, "arguments", None):
                raise _Unsure
            if name in visited:
                continue
            visited.add(name)
            fragment = fragments.get(name)
            if fragment is None or fragment.variable_definitions or fragment.directives:
                raise _Unsure
            if _applies(schema, member, fragment.type_condition):
                yield from _collect(
                    schema, member, fragment.selection_set.selections, fragments, visited
                )
        else:
            raise _Unsure


def _applies(schema: GraphQLSchema, member: GraphQLObjectType, condition: Any) -> bool:
    if condition is None:
        return True
    conditional = type_from_ast(schema, condition)
    if conditional is member:
        return True
    return is_abstract_type(conditional) and schema.is_sub_type(conditional, member)


_plans: DocumentCache[tuple[EventPlan | None]] = DocumentCache(QUERY_CACHE_SIZE)


class EventExecutor(CoreExecutionContext):
    """Strawberry's graphql-core executor; a subscription's events are answered by their
    plan where it has one."""

    _event_plan: EventPlan | bool | None = False  # False: not worked out yet
    _planned: ExecutionResult | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        plan = self._event_plan
        if plan is False:
            plan = self._event_plan = self._plan()
        executor = super().build_per_event_executor(payload)
        if isinstance(plan, EventPlan):
            data = plan.data(payload)
            if data is not None and isinstance(executor, EventExecutor):
                executor._planned = ExecutionResult(data, None)
        return executor

    def _plan(self) -> EventPlan | None:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return None
        if getattr(self, "hooks", None) is not None:
            return None
        # Once per operation of a cached document, not per subscription: the plan depends
        # only on the schema and the document.
        cached = _plans.get(self.operation, self.schema)
        if cached is None:
            cached = (event_plan(self.schema, self.operation, self.fragment_definitions),)
            _plans.put(self.operation, self.schema, cached)
        return cached[0]

    def execute_operation(self, serially: bool | None = None) -> Any:
        planned = self._planned
        if planned is not None:
            return planned
        return super().execute_operation(serially)


__all__ = ["EventExecutor", "EventPlan", "event_plan"]
