"""One error format: every error answer, over HTTP, GraphQL or a websocket, is shaped here.

Every error leaves as `{"message": ..., "extensions": {"code": ..., ..., "requestId": ...}}`:
- `error_entry` renders one such error for the answers the gateway writes itself: inside
  `error_answer` for HTTP (the edge's 400/413/429/503, Strawberry's HTTP refusals, the
  metrics endpoint's 401), and as a websocket `error` message's payload;
- `public_error` gives a GraphQL error the same shape, for Strawberry to send.

- Syntax and validation errors keep their message (BAD_USER_INPUT).
- Our typed errors keep their message and code (see resolvers.errors).
- Anything else is masked as INTERNAL; the details go to the log.
- Every error carries `extensions.requestId` (last), the id in the response's
  `X-Request-ID` and in the log lines (a websocket operation's own id).
- Logging (`log_error`, from the schema's `process_errors`, once per error): one line
  per client error with its code and request id, never the query or its variables; a
  traceback only for INTERNAL. Strawberry's default logs each error at ERROR with the
  query text quoted, about 25 lines each.
- Every message leaves redacted (the server's secrets, the request's bearer token).
- With suggestions hidden (production), "Did you mean ...?" hints are cut from syntax,
  validation and coercion messages: they would spell out the schema that disabled
  introspection hides.

Strawberry's MaskErrors would hide validation errors too, so this replaces it. Streamed
results (everything over websockets) are formatted one by one as they are sent, since the
operation only ends when the stream does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLFormattedError, Node
from graphql.error import GraphQLError
from strawberry.types import ExecutionContext, ExecutionResult, StreamExecutionResult

from providers.redaction import Redactor
from resolvers.errors import OperationTimedOut, log_level, to_gateway_error
from resolvers.monitoring.operation_facts import operation_request_id
from schema.strawberry_seams import closes_websocket
from schema.types.enums import ErrorCode

log = logging.getLogger("aipasta.errors")

# graphql-core's `did_you_mean`: " Did you mean [sub message ]'A', 'B', or 'C'?", where
# every suggestion is a GraphQL name (so the pattern cannot run into user text).
_NAME = r"'[_A-Za-z][_0-9A-Za-z]*'"
_SUGGESTION = re.compile(rf" Did you mean (?:[a-z][a-z ]* )?{_NAME}(?:,? (?:or )?{_NAME})*\?")


def with_request_id(extensions: Mapping[str, Any], request_id: str | None) -> dict[str, Any]:
    """An error's extensions with its answer's request id added, last."""
    return {**extensions, "requestId": request_id} if request_id else dict(extensions)


def error_entry(
    message: str, extensions: Mapping[str, Any], request_id: str
) -> GraphQLFormattedError:
    """One error as the API spells it, for an answer the gateway writes itself."""
    return {"message": message, "extensions": with_request_id(extensions, request_id)}


def error_answer(message: str, extensions: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The JSON body of an HTTP answer that is one error and no data."""
    return {"data": None, "errors": [error_entry(message, extensions, request_id)]}


def bad_input(
    message: str, *, nodes: list[Node] | None = None, details: dict[str, Any] | None = None
) -> GraphQLError:
    """A GraphQL error for a request the schema's own checks refuse (BAD_USER_INPUT)."""
    extensions: dict[str, Any] = {"code": ErrorCode.BAD_USER_INPUT.value}
    if details is not None:
        extensions["details"] = details
    return GraphQLError(message, nodes=nodes, extensions=extensions)


def timed_out(seconds: float, request_id: str | None) -> ExecutionResult:
    """The answer to a query or mutation that ran past `operation_timeout` and was cancelled."""
    error = GraphQLError("timed out", original_error=OperationTimedOut(seconds))
    return ExecutionResult(data=None, errors=[public_error(error, request_id)])


def without_suggestions(message: str) -> str:
    return _SUGGESTION.sub("", message)


def public_error(
    error: GraphQLError,
    request_id: str | None,
    *,
    hide_suggestions: bool = False,
    redactor: Redactor | None = None,
) -> GraphQLError:
    public = _public_error(error, request_id, hide_suggestions=hide_suggestions)
    message = (redactor or Redactor()).redact(public.message)
    extensions = with_request_id(public.extensions or {}, request_id)
    if message == public.message and extensions == public.extensions:
        return public
    return _rebuilt(public, message, extensions)


def _public_error(
    error: GraphQLError, request_id: str | None, *, hide_suggestions: bool
) -> GraphQLError:
    original = error.original_error
    # Variable coercion errors wrap graphql-core's own GraphQLError: bad input, not a fault.
    if original is None or isinstance(original, GraphQLError):
        message = without_suggestions(error.message) if hide_suggestions else error.message
        if error.extensions and "code" in error.extensions:
            return error if message == error.message else _rebuilt(error, message, error.extensions)
        return _rebuilt(error, message, {"code": ErrorCode.BAD_USER_INPUT.value})
    known = to_gateway_error(original)
    if known is not None:
        return _rebuilt(error, known.message, known.extensions)
    return _rebuilt(
        error,
        f"Internal server error (request id {request_id})",
        {"code": ErrorCode.INTERNAL.value},
    )


def error_code(error: GraphQLError) -> str:
    """The code `public_error` gives `error`."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        code = (error.extensions or {}).get("code")
        return str(code) if code else ErrorCode.BAD_USER_INPUT.value
    known = to_gateway_error(original)
    return known.code.value if known is not None else ErrorCode.INTERNAL.value


def log_error(error: GraphQLError, request_id: str | None) -> None:
    """One line per client error, at INFO (WARNING when a dependency failed), with the
    request id, the code and where: never the message, which may quote the query
    (literals, variables) or an upstream's answer. Only an unexpected error (INTERNAL)
    logs its traceback."""
    code = error_code(error)
    where = ".".join(str(p) for p in error.path or ()) or "-"
    original = error.original_error
    if code == ErrorCode.INTERNAL.value:
        log.error(
            "internal error (request %s) at %s",
            request_id,
            where,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        return
    log.log(log_level(code), "request %s: %s at %s", request_id, code, where)


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


class PublicErrors:
    """Gives one operation's errors their public form (`public_error`), for
    schema.operation.GatewayOperation: each streamed result's as it is sent, and at the
    operation's end its result's and the errors raised before execution."""

    def __init__(self, execution_context: ExecutionContext, *, hide_suggestions: bool) -> None:
        self.execution_context = execution_context
        self.hide_suggestions = hide_suggestions

    def _public(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        services = getattr(context, "services", None)
        return public_error(
            error,
            operation_request_id(getattr(context, "request_id", None)),
            hide_suggestions=self.hide_suggestions,
            redactor=getattr(services, "redactor", None),
        )

    def _process(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self._public(e) for e in errors]  # type: ignore[attr-defined]

    def stream_result(self, result: StreamExecutionResult) -> None:
        errors: list[GraphQLError] | None = getattr(result, "errors", None)
        # Strawberry's websocket handler closes the socket (4400) on these, as
        # graphql-transport-ws asks, and recognises them by their type: leave them be.
        if errors and not any(closes_websocket(e) for e in errors):
            self._process(result)

    def operation_done(self) -> None:
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | ExecutionResult):
            self._process(result)
        elif (initial := getattr(result, "initial_result", None)) is not None:
            self._process(initial)
        # Errors raised before execution (parse/validation) are kept here.
        pre = self.execution_context.pre_execution_errors
        if pre:
            self.execution_context.pre_execution_errors = [self._public(e) for e in pre]
