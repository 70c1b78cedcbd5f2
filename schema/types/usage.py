"""Usage report types."""

from __future__ import annotations

import strawberry


@strawberry.type
class UsageRow:
    key: str = strawberry.field(
        description="The model id, the provider name or the day (YYYY-MM-DD)."
    )
    requests: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = strawberry.field(
        default=0, description="Completion tokens spent thinking (part of completionTokens)."
    )
    cached_prompt_tokens: int = strawberry.field(
        default=0, description="Prompt tokens read from a prompt cache (part of promptTokens)."
    )
    cache_write_tokens: int = strawberry.field(
        default=0, description="Prompt tokens written to a prompt cache (part of promptTokens)."
    )
    total_cost: float
    failed_requests: int
    avg_latency_ms: float | None
    avg_time_to_first_token_ms: float | None


@strawberry.type
class UsageReport:
    rows: list[UsageRow]
    total_requests: int
    total_cost: float
