"""The answer to a query or mutation that ran past `operation_timeout` and was cancelled."""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from resolvers.errors import GatewayError
from schema.errors import public_error
from schema.types.enums import ErrorCode

TIMEOUT_REASON = "TIMEOUT"


class OperationTimedOut(GatewayError):
    """The gateway's own limit (PROVIDER_TIMEOUT is an upstream's)."""

    code = ErrorCode.TIMEOUT
    retryable = True

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The operation took longer than {seconds:g} s and was cancelled",
            details={"reason": TIMEOUT_REASON, "timeoutSeconds": seconds},
        )


def timed_out(seconds: float, request_id: str | None) -> ExecutionResult:
    error = GraphQLError("timed out", original_error=OperationTimedOut(seconds))
    return ExecutionResult(data=None, errors=[public_error(error, request_id)])
