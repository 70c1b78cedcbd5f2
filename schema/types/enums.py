"""The schema's enums: plain Python enums, registered with Strawberry where they are defined."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum
class ErrorCode(Enum):
    BAD_USER_INPUT = "BAD_USER_INPUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    PROVIDER_RATE_LIMITED = "PROVIDER_RATE_LIMITED"
    INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"
    CONTENT_FILTERED = "CONTENT_FILTERED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # Beyond the contract: the gateway's own time limit on an operation.
    TIMEOUT = "TIMEOUT"
    # Beyond the contract: a dependency of the gateway itself (not a provider, not the
    # database) is down and the gateway refuses rather than serve unguarded.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


@strawberry.enum
class ChatRole(Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    # Beyond the contract: a tool's result, answering an assistant turn's tool call.
    TOOL = "tool"


@strawberry.enum
class MessageStatus(Enum):
    COMPLETE = "COMPLETE"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"


@strawberry.enum
class UsageGroupBy(Enum):
    MODEL = "MODEL"
    PROVIDER = "PROVIDER"
    DAY = "DAY"


@strawberry.enum
class ReasoningEffort(Enum):
    """How hard a thinking model thinks (OpenRouter's `reasoning.effort`)."""

    XHIGH = "xhigh"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    MINIMAL = "minimal"
    NONE = "none"


@strawberry.enum
class ResponseFormatType(Enum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@strawberry.enum
class RoutingSort(Enum):
    """Which of an aggregator's providers to prefer."""

    PRICE = "price"
    THROUGHPUT = "throughput"
    LATENCY = "latency"
