"""What one GraphQL operation did, for its log line: noted by the resolvers as it runs.

The schema's OperationLog extension starts an `OperationFacts` per operation in a
context variable (each HTTP request and each websocket operation runs in a task of its
own, so concurrent operations never share one); a chat run's end adds its model, tokens
and cost. Nothing here is written per token.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resolvers.chat.run import RunResult


@dataclass
class OperationFacts:
    request_id: str
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    # A failure the client read in-band (a ChatFailed event), not as a GraphQL error.
    error_code: str | None = None

    def note_run(self, result: RunResult) -> None:
        self.model = result.model.id
        self.prompt_tokens += result.usage.prompt_tokens
        self.completion_tokens += result.usage.completion_tokens
        self.cost += result.cost.total_cost
        if result.error is not None and self.error_code is None:
            self.error_code = result.error.code.value


_current: ContextVar[OperationFacts | None] = ContextVar("aipasta_operation", default=None)


def begin_operation(request_id: str) -> OperationFacts:
    facts = OperationFacts(request_id)
    _current.set(facts)
    return facts


def current_operation() -> OperationFacts | None:
    return _current.get()


def operation_request_id(fallback: str | None) -> str | None:
    """The running operation's request id (a websocket operation has its own)."""
    facts = _current.get()
    return facts.request_id if facts is not None else fallback


def own_request_id() -> str:
    """The running operation's own id (made by OperationLog), else a new one."""
    facts = _current.get()
    return facts.request_id if facts is not None else uuid.uuid4().hex
