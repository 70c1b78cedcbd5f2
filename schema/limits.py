"""Depth, aliases and estimated cost of an operation, in work linear in the document.

Strawberry's QueryDepthLimiter and MaxAliasesLimiter walk into a fragment again at every
spread of it: a document of ~300 tokens where `F_i` spreads `F_{i-1}` twice made them
visit 2^25 selections, synchronously, on the event loop. Here each fragment is measured
once, dependencies first, and a spread reuses the result (the numbers it reports may be
huge, the work is not). A fragment cycle (already a validation error) counts as empty
where it closes.

- Depth: the levels below a root field (the root field is 0), introspection fields
  (`__schema`, `__type`) included like any other.
- Aliases: every aliased field, a fragment counting once per spread, summed over the
  document's operations (as Strawberry counted).
- Cost: the estimated number of resolved fields. A field costs 1, plus its selection
  once per item: a list's items count `first`/`last` times when the field takes that
  argument (the value given, a variable's value or the schema's default), otherwise
  `default_list_weight` times; a connection's page size (a field taking `first`/`last`
  that is not itself a list) weights the lists directly under it (`nodes`, `edges`).
  Cost depends on the variables, so it is checked per request after validation, which
  the query cache keeps (a cost that read no variable is kept too, by document and
  operation); depth and aliases are a validation rule, cached with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
    value_from_ast_untyped,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef
from strawberry.types import ExecutionContext

from schema.errors import bad_input
from schema.query_cache import QUERY_CACHE_SIZE, DocumentCache
from schema.strawberry_seams import core_schema

T = TypeVar("T")

PAGE_ARGUMENTS = ("first", "last")
# How many items a list without `first`/`last` is assumed to have.
DEFAULT_LIST_WEIGHT = 10
ANONYMOUS = "anonymous"


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _operations(document: DocumentNode) -> Iterator[OperationDefinitionNode]:
    return (d for d in document.definitions if isinstance(d, OperationDefinitionNode))


def _spreads(selection_set: SelectionSetNode) -> Iterator[str]:
    """The names of the fragments spread anywhere inside (not through) a selection set."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)


def dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads (iteratively: a long chain
    of fragments must not exhaust the stack). On a cycle the order is arbitrary."""
    order: list[str] = []
    seen: set[str] = set()
    for root in fragments:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(list(_spreads(fragments[root].selection_set))))]
        while stack:
            name, pending = stack[-1]
            child = next((c for c in pending if c in fragments and c not in seen), None)
            if child is None:
                stack.pop()
                order.append(name)
            else:
                seen.add(child)
                stack.append((child, iter(list(_spreads(fragments[child].selection_set)))))
    return order


def memoised(
    document: DocumentNode, measure: Callable[[FragmentDefinitionNode, Mapping[str, T]], T]
) -> dict[str, T]:
    """Every fragment's measure, computed once each, dependencies first; `measure` reads
    the ones it spreads from the mapping (a fragment missing there counts as empty)."""
    fragments = _fragments(document)
    results: dict[str, T] = {}
    for name in dependency_order(fragments):
        results[name] = measure(fragments[name], results)
    return results


# --- depth and aliases: a validation rule ---------------------------------------------


@dataclass(frozen=True)
class Shape:
    depth: int = 0
    aliases: int = 0


def shape(selection_set: SelectionSetNode, fragments: Mapping[str, Shape]) -> Shape:
    depth = aliases = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            aliases += selection.alias is not None
            if selection.selection_set:
                inner = shape(selection.selection_set, fragments)
                depth = max(depth, 1 + inner.depth)
                aliases += inner.aliases
            continue
        if isinstance(selection, FragmentSpreadNode):
            inner = fragments.get(selection.name.value, Shape())
        else:
            assert isinstance(selection, InlineFragmentNode)
            inner = shape(selection.selection_set, fragments)
        depth = max(depth, inner.depth)
        aliases += inner.aliases
    return Shape(depth, aliases)


def shape_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """A rule class per limits (the validation cache tells rules apart by name within a
    schema, and one schema has one set of limits)."""

    class DepthAndAliases(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = memoised(document, lambda f, done: shape(f.selection_set, done))
            total_aliases = 0
            for operation in _operations(document):
                measured = shape(operation.selection_set, fragments)
                total_aliases += measured.aliases
                if measured.depth > max_depth:
                    name = operation.name.value if operation.name else ANONYMOUS
                    context.report_error(
                        bad_input(
                            f"'{name}' exceeds maximum operation depth of {max_depth}",
                            details={"limit": max_depth, "depth": measured.depth},
                        )
                    )
            if total_aliases > max_aliases:
                context.report_error(
                    bad_input(
                        f"{total_aliases} aliases found. Allowed: {max_aliases}",
                        details={"limit": max_aliases, "aliases": total_aliases},
                    )
                )

    return DepthAndAliases


# --- cost: per request, with the variables -----------------------------------------------


@dataclass(frozen=True)
class Cost:
    """A selection set's cost as `fixed + weight * scaled`, where `weight` is how many
    items the lists directly in it have: the page size of the connection it belongs to,
    or the default list weight. Kept apart so a fragment is costed once, wherever spread."""

    fixed: int = 0
    scaled: int = 0

    def at(self, weight: int) -> int:
        return self.fixed + weight * self.scaled


class CostEstimator:
    def __init__(
        self,
        schema: GraphQLSchema,
        variables: Mapping[str, Any] | None,
        default_list_weight: int,
    ) -> None:
        self.schema = schema
        self.variables = variables or {}
        self.default_list_weight = default_list_weight
        # Whether the cost read a variable: when not, it is the same for any variables.
        self.read_variables = False

    def operation_cost(self, document: DocumentNode, operation: OperationDefinitionNode) -> int:
        defaults = {
            definition.variable.name.value: value_from_ast_untyped(definition.default_value)
            for definition in operation.variable_definitions or ()
            if definition.default_value is not None
        }
        self.variables = {**defaults, **self.variables}
        costs = memoised(
            document,
            lambda f, done: self._cost(
                f.selection_set, self.schema.get_type(f.type_condition.name.value), done
            ),
        )
        root = self.schema.get_root_type(operation.operation)
        return self._cost(operation.selection_set, root, costs).at(self.default_list_weight)

    def _cost(
        self,
        selection_set: SelectionSetNode,
        parent: GraphQLNamedType | None,
        fragments: Mapping[str, Cost],
    ) -> Cost:
        fixed = scaled = 0
        for selection in selection_set.selections:
            if isinstance(selection, FragmentSpreadNode):
                inner = fragments.get(selection.name.value, Cost())
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self._cost(
                    selection.selection_set,
                    self.schema.get_type(condition.name.value) if condition else parent,
                    fragments,
                )
            else:
                assert isinstance(selection, FieldNode)
                fixed += 1
                if not selection.selection_set:
                    continue
                definition = _field(self.schema, parent, selection.name.value)
                page = self._page_size(selection, definition)
                child_type = get_named_type(definition.type) if definition else None
                is_list = definition is not None and is_list_type(
                    get_nullable_type(definition.type)
                )
                if is_list:
                    items = self._cost(selection.selection_set, child_type, fragments)
                    each = items.at(self.default_list_weight)
                    if page is None:
                        scaled += each
                    else:
                        fixed += page * each
                else:
                    children = self._cost(selection.selection_set, child_type, fragments)
                    fixed += children.at(self.default_list_weight if page is None else page)
                continue
            fixed += inner.fixed
            scaled += inner.scaled
        return Cost(fixed, scaled)

    def _page_size(self, node: FieldNode, definition: GraphQLField | None) -> int | None:
        """How many items the field's `first`/`last` asks for; None when it takes neither."""
        names = [name for name in PAGE_ARGUMENTS if definition and name in definition.args]
        if not names or definition is None:
            return None
        given = {argument.name.value: argument.value for argument in node.arguments or ()}
        candidates: list[object] = []
        for name in names:
            argument = given.get(name)
            if isinstance(argument, IntValueNode):
                candidates.append(int(argument.value))
            elif isinstance(argument, VariableNode):
                self.read_variables = True
                candidates.append(self.variables.get(argument.name.value))
        candidates.extend(definition.args[name].default_value for name in names)
        for value in candidates:
            if isinstance(value, int) and not isinstance(value, bool):
                return max(value, 0)
        return self.default_list_weight


def _field(
    schema: GraphQLSchema, parent: GraphQLNamedType | None, name: str
) -> GraphQLField | None:
    if parent is not None and parent is schema.query_type:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None


# Costs that no variable changes, by document and operation: most documents name no
# page size in a variable, and costing them again on every request is wasted work.
_fixed_costs: DocumentCache[int] = DocumentCache(QUERY_CACHE_SIZE)


def cost_refusal(
    context: ExecutionContext, *, max_cost: int, default_list_weight: int
) -> list[GraphQLError] | None:
    """The answer to an operation whose estimated cost is over `max_cost`, or None. Only
    for a valid document (validation found no errors), with this request's variables."""
    document = context.graphql_document
    if context.pre_execution_errors != [] or document is None:
        return None
    schema = core_schema(context.schema)
    key = (schema, context.operation_name, default_list_weight)
    cost = _fixed_costs.get(document, key)
    if cost is None:
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return None
        estimator = CostEstimator(schema, context.variables, default_list_weight)
        cost = estimator.operation_cost(document, operation)
        if not estimator.read_variables:
            _fixed_costs.put(document, key, cost)
    if cost <= max_cost:
        return None
    return [
        bad_input(
            f"Query cost {cost} exceeds the limit of {max_cost} "
            "(AIPASTA_MAX_QUERY_COST): ask for fewer fields or smaller pages",
            details={"limit": max_cost, "cost": cost},
        )
    ]
