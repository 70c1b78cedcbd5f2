"""Parsing and validating a query text once, not on every request.

Strawberry's own caches do not fit: ParserCache raises syntax errors from inside its
hook, where they escape our error format, and ValidationCache overwrites errors that an
earlier guard (unsafe variables) already set. These two leave both cases to Strawberry.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension

from schema.strawberry_seams import core_schema, validate

QUERY_CACHE_SIZE = 256

# Module-level and bounded: shared by every request, whatever query texts are sent.
_cached_parse = lru_cache(maxsize=QUERY_CACHE_SIZE)(parse)


def cached_document(query: str, max_tokens: int) -> DocumentNode:
    """`query` parsed as CachedParse parses it under MaxTokensLimiter (the same LRU entry,
    so parsing here first costs Strawberry nothing); raises GraphQLError."""
    return _cached_parse(query, max_tokens=max_tokens)


class _ValidationResults:
    """An LRU of validation errors by (schema, document, rule names).

    Rules go by name because Strawberry's limiters build a new rule class for every
    operation; within one schema a rule's name always stands for the same settings.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._results: OrderedDict[tuple[object, ...], list[GraphQLError]] = OrderedDict()

    def validate(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        rules: Sequence[type[ASTValidationRule]],
    ) -> list[GraphQLError]:
        key = (schema, document, tuple(f"{r.__module__}.{r.__qualname__}" for r in rules))
        errors = self._results.get(key)
        if errors is None:
            errors = validate(schema, document, rules)
            self._results[key] = errors
            if len(self._results) > self._size:
                self._results.popitem(last=False)
        else:
            self._results.move_to_end(key)
        return errors


_validation_results = _ValidationResults(QUERY_CACHE_SIZE)


class CachedParse(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            # A text that does not parse is left to Strawberry, which reports it.
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _cached_parse(context.query, **context.parse_options)
        yield


class CachedValidation(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        rules: Sequence[Any] = context.validation_rules
        # Errors already set by a guard stand; the same document object (from the parse
        # cache) is what makes a hit possible.
        if context.pre_execution_errors is None and context.graphql_document is not None:
            context.pre_execution_errors = list(
                _validation_results.validate(
                    core_schema(context.schema), context.graphql_document, rules
                )
            )
        yield
