"""Model catalog types. The catalog builds a `Model` per provider model once per
version of its lists (resolvers/catalog/index.py), not once per query."""

from __future__ import annotations

from datetime import datetime

import strawberry

from schema.types.page import PageInfo


@strawberry.type
class ModelPricing:
    known: bool = strawberry.field(
        description="False where the provider publishes no price; the other fields are then null."
    )
    prompt_per_million: float | None
    completion_per_million: float | None
    per_request: float | None
    per_image: float | None
    cache_read_per_million: float | None = strawberry.field(
        default=None,
        description="Prompt tokens read from the prompt cache; null: promptPerMillion.",
    )
    cache_write_per_million: float | None = strawberry.field(
        default=None,
        description="Prompt tokens written to the prompt cache; null: promptPerMillion.",
    )
    reasoning_per_million: float | None = strawberry.field(
        default=None, description="Reasoning tokens; null: completionPerMillion."
    )


@strawberry.type
class Model:
    id: strawberry.ID
    upstream_id: str
    provider: str
    name: str
    description: str | None
    context_length: int | None
    input_modalities: list[str]
    output_modalities: list[str]
    multimodal: bool
    free: bool
    pricing: ModelPricing
    supported_parameters: list[str]
    supports_tools: bool | None = strawberry.field(
        default=None, description="Whether it takes tools; null when its provider does not say."
    )
    supports_reasoning: bool | None = strawberry.field(
        default=None, description="Whether it can reason; null when its provider does not say."
    )
    supports_structured_output: bool | None = strawberry.field(
        default=None,
        description="Whether it follows a JSON schema; null when its provider does not say.",
    )
    max_completion_tokens: int | None = strawberry.field(
        default=None, description="The longest answer it gives, when its provider says."
    )


@strawberry.type
class ModelConnection:
    total_count: int
    nodes: list[Model]
    page_info: PageInfo


@strawberry.type
class ProviderModels:
    provider: str
    models: list[Model]


@strawberry.type
class ProviderCount:
    provider: str
    count: int


@strawberry.type
class ModelStats:
    total: int
    multimodal: int
    text_only: int
    free: int
    paid: int
    by_provider: list[ProviderCount]


@strawberry.type
class ProviderCatalogStatus:
    provider: str
    status: str = strawberry.field(
        description=(
            "ok, stale (its last good list, past expiry), loading (no list yet, the first "
            "fetch under way) or error (no list: the fetch failed)"
        )
    )
    model_count: int
    fetched_at: datetime | None
    error: str | None


@strawberry.type
class ModelCatalog:
    all: list[Model]
    multimodal: list[Model]
    text_only: list[Model]
    free: list[Model]
    paid: list[Model]
    by_provider: list[ProviderModels]
    stats: ModelStats
    cached: bool = strawberry.field(
        description=(
            "True when served from lists fetched earlier (they are refreshed in the "
            "background); false when no list has been fetched yet, and for a refresh "
            "that fetched one now."
        )
    )
    stale: bool = strawberry.field(
        description=(
            "True when a provider could not be reached and its last good list is served "
            "past expiry."
        )
    )
    fetched_at: datetime | None
    expires_at: datetime | None
    providers: list[ProviderCatalogStatus]
