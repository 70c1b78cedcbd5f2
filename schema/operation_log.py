"""One structured log line and the metrics for every GraphQL operation.

The line (logger `aipasta.operations`, INFO) carries the request id (a websocket
operation's own), the operation's type and name, a hash of the user id, its status and
error code, its duration and, for a chat, the model, tokens and cost. Never the query's
text, its variables or any message content, unless AIPASTA_LOG_CONTENT=true adds the
variables. A subscription's line is written when its stream ends.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from typing import Any

from graphql.error import GraphQLError
from starlette.websockets import WebSocket
from strawberry.types import ExecutionContext, ExecutionResult, StreamExecutionResult

from resolvers.context import Context
from resolvers.monitoring.metrics import safe_name
from resolvers.monitoring.operation_facts import OperationFacts, begin_operation
from schema.errors import error_code
from schema.strawberry_seams import CannotGetOperationTypeError

log = logging.getLogger("aipasta.operations")


@functools.lru_cache(maxsize=1024)
def user_hash(user_id: str) -> str:
    """The user in logs: enough to follow one user's requests, not their id."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:12]


class OperationLog:
    """One operation's line, for schema.operation.GatewayOperation: `start` when the
    operation begins (nothing is logged without the gateway's Context), `stream_result`
    for each streamed result, `done` at its end."""

    def __init__(self, execution_context: ExecutionContext) -> None:
        self.execution_context = execution_context
        self._errors: list[GraphQLError] = []
        self._context: Context | None = None
        self._facts: OperationFacts | None = None
        self._started = 0.0

    def start(self) -> None:
        context = self.execution_context.context
        if not isinstance(context, Context):
            return
        self._context = context
        self._started = time.monotonic()
        # A websocket's context is the connection's: each operation gets its own id.
        own_id = isinstance(context.request, WebSocket)
        self._facts = begin_operation(uuid.uuid4().hex if own_id else context.request_id)

    def stream_result(self, result: StreamExecutionResult) -> None:
        self._errors += getattr(result, "errors", None) or []

    def done(self) -> None:
        if self._context is not None and self._facts is not None:
            self._done(self._context, self._facts, time.monotonic() - self._started)

    def _all_errors(self) -> list[GraphQLError]:
        ctx = self.execution_context
        result = ctx.result
        errors = list(ctx.pre_execution_errors or [])
        if isinstance(result, ExecutionResult):
            errors += result.errors or []
        elif result is not None:
            errors += getattr(result, "errors", None) or []
        return errors + self._errors

    def _type(self) -> str:
        try:
            return self.execution_context.operation_type.value
        except (CannotGetOperationTypeError, RuntimeError):  # no such operation: nothing ran
            return "unknown"

    def _done(self, context: Context, facts: OperationFacts, seconds: float) -> None:
        errors = self._all_errors()
        code = error_code(errors[0]) if errors else facts.error_code
        variables = (
            self.execution_context.variables if context.services.settings.log_content else None
        )
        operation_done(
            context,
            facts,
            kind=self._type(),
            name=self.execution_context.operation_name,
            code=code,
            seconds=seconds,
            variables=variables,
        )


def operation_done(
    context: Context,
    facts: OperationFacts,
    *,
    kind: str,
    name: str | None,
    code: str | None,
    seconds: float,
    variables: dict[str, Any] | None = None,
) -> None:
    """An operation's metrics and its one log line (also the REST adapters', whose
    requests are operations too: aipasta.edge.adapters)."""
    services = context.services
    services.metrics.operation_done(type=kind, name=name, code=code, seconds=seconds)
    identity = context.identity
    fields: dict[str, Any] = {
        "request_id": facts.request_id,
        "operation_type": kind,
        "operation_name": safe_name(name),
        "user": user_hash(identity.user_id) if identity is not None else None,
        "status": "ok" if code is None else "error",
        "error_code": code,
        "duration_ms": round(seconds * 1000, 1),
    }
    if facts.model is not None:
        fields |= {
            "model": facts.model,
            "prompt_tokens": facts.prompt_tokens,
            "completion_tokens": facts.completion_tokens,
            "cost": str(facts.cost),
        }
    if variables is not None:
        fields["variables"] = variables
    log.info("%s %s %s", kind, fields["operation_name"], fields["status"], extra={"fields": fields})
