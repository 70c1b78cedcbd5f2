"""Parsing and validating a query text once, not on every request.

Strawberry's own caches do not fit: ParserCache raises syntax errors from inside its
hook, where they escape our error format, and ValidationCache overwrites errors that an
earlier guard (unsafe variables) already set. These leave both cases to Strawberry
(schema.operation.GatewayOperation calls them).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import Generic, TypeVar

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, Node, parse
from strawberry.types import ExecutionContext

from schema.strawberry_seams import core_schema, validate

QUERY_CACHE_SIZE = 256
T = TypeVar("T")

# Module-level and bounded: shared by every request, whatever query texts are sent.
_cached_parse = lru_cache(maxsize=QUERY_CACHE_SIZE)(parse)


def cached_document(query: str, max_tokens: int) -> DocumentNode:
    """`query` parsed as `parse_cached` parses it under the token limit (the same LRU entry,
    so parsing here first costs Strawberry nothing); raises GraphQLError."""
    return _cached_parse(query, max_tokens=max_tokens)


class DocumentCache(Generic[T]):
    """A bounded LRU of values worked out from a document (its validation errors, its
    cost) or a node of one (an operation's event plan), by the document object and a key
    of what else they depend on.

    By the object, not its value: hashing a document hashes its whole tree, a cost paid
    on every request. A document from the parse cache is the same object each time its
    text comes again; an entry keeps its document alive, so the identity cannot be
    reused by another while the entry lasts."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[int, Hashable], tuple[Node, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, document: Node, key: Hashable) -> T | None:
        entry = self._entries.get((id(document), key))
        if entry is None or entry[0] is not document:
            return None
        self._entries.move_to_end((id(document), key))
        return entry[1]

    def put(self, document: Node, key: Hashable, value: T) -> None:
        self._entries[(id(document), key)] = (document, value)
        self._entries.move_to_end((id(document), key))
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


@lru_cache(maxsize=QUERY_CACHE_SIZE)
def _rule_names(rules: tuple[type[ASTValidationRule], ...]) -> tuple[str, ...]:
    # Rules go by name: within one schema a rule's name always stands for the same
    # settings, even if a rule class were built afresh for each operation.
    return tuple(f"{r.__module__}.{r.__qualname__}" for r in rules)


_validation_results: DocumentCache[list[GraphQLError]] = DocumentCache(QUERY_CACHE_SIZE)


def validation_errors(
    schema: GraphQLSchema, document: DocumentNode, rules: Sequence[type[ASTValidationRule]]
) -> list[GraphQLError]:
    """`document`'s validation errors under `rules` (and Strawberry's), worked out once
    per schema, document and rules while the entry lasts."""
    key = (schema, _rule_names(tuple(rules)))
    errors = _validation_results.get(document, key)
    if errors is None:
        errors = validate(schema, document, rules)
        _validation_results.put(document, key, errors)
    return errors


def parse_cached(context: ExecutionContext) -> None:
    """Sets the operation's document from the parse cache, before Strawberry parses.
    A text that does not parse is left to Strawberry, which reports it."""
    if context.query and context.graphql_document is None:
        with contextlib.suppress(GraphQLError):
            context.graphql_document = _cached_parse(context.query, **context.parse_options)


def validate_cached(context: ExecutionContext) -> None:
    """Sets the operation's validation errors (`[]` when valid) from the cache, so that
    Strawberry does not validate. Errors already set by a guard stand; the same document
    object (from the parse cache) is what makes a hit possible."""
    if context.pre_execution_errors is None and context.graphql_document is not None:
        context.pre_execution_errors = list(
            validation_errors(
                core_schema(context.schema), context.graphql_document, context.validation_rules
            )
        )
