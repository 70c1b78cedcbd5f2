"""The one schema extension: everything the gateway does around each GraphQL operation.

Strawberry wraps every hook of every extension in a fresh context manager for each
operation (and each streamed result), so the steps run here, from one extension, in
the order the separate extensions ran them:

- when the operation begins: the token limit for the parser and the guards' validation
  rules (schema.guards), the operation's log record started (schema.operation_log), the
  document taken from the parse cache (schema.query_cache);
- before validation: the guards' refusals (unsafe variables, a subscription over a
  plain POST), the cached validation, then the cost limit (schema.limits), which only
  a valid document reaches;
- each streamed result: its errors noted for the log line, then made public
  (schema.errors);
- when the operation ends: errors made public, then the log line, which sees them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.types import StreamExecutionResult

from aipasta.settings import Settings
from schema.errors import PublicErrors
from schema.guards import guard_rules, refusal_before_validation
from schema.limits import DEFAULT_LIST_WEIGHT, cost_refusal
from schema.operation_log import OperationLog
from schema.query_cache import parse_cached, validate_cached


@dataclass(frozen=True)
class OperationRules:
    """What the settings decide for every operation, worked out once per schema."""

    max_tokens: int
    validation_rules: tuple[type[ASTValidationRule], ...]
    hide_suggestions: bool
    max_cost: int
    default_list_weight: int = DEFAULT_LIST_WEIGHT

    @classmethod
    def from_settings(cls, settings: Settings) -> OperationRules:
        return cls(
            max_tokens=settings.max_tokens,
            validation_rules=guard_rules(settings),
            hide_suggestions=not settings.suggestions_enabled,
            max_cost=settings.max_query_cost,
        )


class GatewayOperation(SchemaExtension):
    """Built afresh for each operation (Strawberry calls the schema's factory)."""

    def __init__(self, rules: OperationRules) -> None:
        self.rules = rules
        self._log: OperationLog | None = None
        self._errors: PublicErrors | None = None

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        rules = self.rules
        context.parse_options["max_tokens"] = rules.max_tokens
        context.validation_rules = (*context.validation_rules, *rules.validation_rules)
        self._log = OperationLog(context)
        self._errors = PublicErrors(context, hide_suggestions=rules.hide_suggestions)
        self._log.start()
        # Strawberry does not parse a document set before its parsing step.
        parse_cached(context)
        yield
        self._errors.operation_done()
        self._log.done()

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # Errors set before validation stop the operation: Strawberry then skips its own
        # validation and returns them without executing anything.
        refused = refusal_before_validation(context)
        if refused is not None:
            context.pre_execution_errors = refused
        else:
            validate_cached(context)
            rules = self.rules
            refused = cost_refusal(
                context, max_cost=rules.max_cost, default_list_weight=rules.default_list_weight
            )
            if refused is not None:
                context.pre_execution_errors = refused
        yield

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        if self._log is not None and self._errors is not None:
            self._log.stream_result(result)
            self._errors.stream_result(result)
        yield
