"""One model of the merged catalog, normalised across providers.

Prices are Decimal USD per million tokens so that cost arithmetic stays exact; the
API turns them into floats only at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

TEXT = "text"


@dataclass(frozen=True, slots=True)
class Pricing:
    """What a model costs; every amount is None when the provider publishes no price."""

    prompt_per_million: Decimal | None = None
    completion_per_million: Decimal | None = None
    per_request: Decimal | None = None
    per_image: Decimal | None = None
    # Per million tokens; None when the provider publishes no such price (cached prompt
    # tokens then cost the prompt price, reasoning tokens the completion price).
    cache_read_per_million: Decimal | None = None
    cache_write_per_million: Decimal | None = None
    reasoning_per_million: Decimal | None = None

    @property
    def known(self) -> bool:
        return self.prompt_per_million is not None and self.completion_per_million is not None

    @property
    def is_zero(self) -> bool:
        return (
            self.known
            and self.prompt_per_million == 0
            and self.completion_per_million == 0
            and not self.per_request
        )


UNKNOWN_PRICE = Pricing()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    upstream_id: str
    name: str
    description: str | None = None
    context_length: int | None = None
    input_modalities: tuple[str, ...] = (TEXT,)
    output_modalities: tuple[str, ...] = (TEXT,)
    pricing: Pricing = UNKNOWN_PRICE
    supported_parameters: tuple[str, ...] = ()
    free_tier: bool = field(default=False)
    # What the model accepts, when its provider says; None when unknown (then tried).
    # Structured output means a JSON schema (OpenRouter's `structured_outputs`), not
    # merely `response_format: json_object`.
    supports_tools: bool | None = None
    supports_reasoning: bool | None = None
    supports_structured_output: bool | None = None
    max_completion_tokens: int | None = None

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.upstream_id}"

    @property
    def multimodal(self) -> bool:
        return any(modality != TEXT for modality in self.input_modalities)

    @property
    def text_only(self) -> bool:
        return set(self.input_modalities) == {TEXT} and set(self.output_modalities) == {TEXT}

    @property
    def free(self) -> bool:
        return self.free_tier or self.pricing.is_zero

    @property
    def paid(self) -> bool:
        """Known to cost money; a model with an unknown price is neither free nor paid."""
        return self.pricing.known and not self.free
