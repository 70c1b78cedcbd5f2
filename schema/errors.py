"""One error format: every GraphQL error leaves with `extensions.code`.

- Syntax and validation errors keep their message (BAD_USER_INPUT).
- Our typed errors keep their message and code (see resolvers.errors).
- Anything else is masked as INTERNAL with a request id; the details go to the log.

Strawberry's MaskErrors would hide validation errors too, so this replaces it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from resolvers.errors import ErrorCode, to_gateway_error

log = logging.getLogger("aipasta.errors")


def public_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    # Variable coercion errors wrap graphql-core's own GraphQLError: bad input, not a fault.
    if original is None or isinstance(original, GraphQLError):
        if error.extensions and "code" in error.extensions:
            return error
        return _rebuilt(error, error.message, {"code": ErrorCode.BAD_USER_INPUT.value})
    known = to_gateway_error(original)
    if known is not None:
        return _rebuilt(error, known.message, known.extensions)
    log.error(
        "internal error (request %s) at %s",
        request_id,
        ".".join(str(p) for p in error.path or ()),
        exc_info=(type(original), original, original.__traceback__),
    )
    extensions: dict[str, Any] = {"code": ErrorCode.INTERNAL.value}
    if request_id:
        extensions["requestId"] = request_id
    return _rebuilt(error, f"Internal server error (request id {request_id})", extensions)


def _rebuilt(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class PublicErrors(SchemaExtension):
    def _request_id(self) -> str | None:
        context = self.execution_context.context
        return getattr(context, "request_id", None)

    def _process(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            request_id = self._request_id()
            result.errors = [public_error(e, request_id) for e in errors]  # type: ignore[attr-defined]

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult):
            self._process(result)
        elif (initial := getattr(result, "initial_result", None)) is not None:
            self._process(initial)
        # Errors raised before execution (parse/validation) are kept here.
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = [
                public_error(e, self._request_id()) for e in pre
            ]
