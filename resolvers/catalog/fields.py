"""The catalog fields: `models`, `model`, `modelCatalog` and `refreshModels`."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import strawberry

from providers.model import ModelInfo
from resolvers.context import Info
from resolvers.cursor import decode_cursor, encode_cursor
from resolvers.errors import BadUserInput
from schema.types.catalog import Model, ModelCatalog, ModelConnection
from schema.types.inputs import ModelFilter
from schema.types.page import PageInfo

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_SEARCH = 200
MAX_MODALITY = 32
CURSOR_KIND = "model"


@dataclass(frozen=True)
class _Criteria:
    provider: str | None
    free: bool | None
    multimodal: bool | None
    search: str | None
    input_modality: str | None
    min_context_length: int | None
    max_prompt_price: Decimal | None
    supports_tools: bool | None = None
    supports_reasoning: bool | None = None
    output_modality: str | None = None

    def matches(self, model: ModelInfo) -> bool:
        if self.provider is not None and model.provider != self.provider:
            return False
        if self.free is not None and model.free != self.free:
            return False
        if self.multimodal is not None and model.multimodal != self.multimodal:
            return False
        if self.input_modality is not None and self.input_modality not in model.input_modalities:
            return False
        if self.output_modality is not None and self.output_modality not in model.output_modalities:
            return False
        # true: known to support it; false: everything else (unknown included).
        if (
            self.supports_tools is not None
            and (model.supports_tools is True) != self.supports_tools
        ):
            return False
        if self.supports_reasoning is not None and (
            (model.supports_reasoning is True) != self.supports_reasoning
        ):
            return False
        if self.min_context_length is not None and (
            model.context_length is None or model.context_length < self.min_context_length
        ):
            return False
        if self.max_prompt_price is not None:
            price = model.pricing.prompt_per_million
            if price is None or price > self.max_prompt_price:
                return False
        if self.search is not None:
            haystack = f"{model.id}\n{model.name}\n{model.description or ''}".casefold()
            if self.search not in haystack:
                return False
        return True


def _criteria(filter: ModelFilter | None) -> _Criteria | None:
    if filter is None:
        return None
    search = filter.search.strip() if filter.search else None
    if search is not None and len(search) > MAX_SEARCH:
        raise BadUserInput(f"search is longer than {MAX_SEARCH} characters", field="filter.search")
    for modality, name in (
        (filter.input_modality, "inputModality"),
        (filter.output_modality, "outputModality"),
    ):
        if modality is not None and len(modality) > MAX_MODALITY:
            raise BadUserInput(
                f"{name} is longer than {MAX_MODALITY} characters", field=f"filter.{name}"
            )
    if filter.min_context_length is not None and filter.min_context_length < 0:
        raise BadUserInput("minContextLength must not be negative", field="filter.minContextLength")
    max_price: Decimal | None = None
    if filter.max_prompt_price_per_million is not None:
        try:
            max_price = Decimal(str(filter.max_prompt_price_per_million))
        except InvalidOperation:
            max_price = None
        if max_price is None or not max_price.is_finite() or max_price < 0:
            raise BadUserInput(
                "maxPromptPricePerMillion must be a non-negative number",
                field="filter.maxPromptPricePerMillion",
            )
    return _Criteria(
        provider=filter.provider.strip().lower() if filter.provider else None,
        free=filter.free,
        multimodal=filter.multimodal,
        search=search.casefold() if search else None,
        input_modality=filter.input_modality.strip().lower() if filter.input_modality else None,
        min_context_length=filter.min_context_length,
        max_prompt_price=max_price,
        supports_tools=filter.supports_tools,
        supports_reasoning=filter.supports_reasoning,
        output_modality=filter.output_modality.strip().lower() if filter.output_modality else None,
    )


def paginate_models(
    models: Sequence[Model], *, first: int | None, after: str | None
) -> ModelConnection:
    """A page of `models` (sorted by id) after the model named by the cursor."""
    limit = DEFAULT_PAGE if first is None else first
    if limit < 0 or limit > MAX_PAGE:
        raise BadUserInput(f"first must be between 0 and {MAX_PAGE}", field="first")
    start = 0
    if after is not None:
        after_id = decode_cursor(CURSOR_KIND, after, field="after")
        start = bisect.bisect_right([m.id for m in models], after_id)
    nodes = list(models[start : start + limit])
    return ModelConnection(
        total_count=len(models),
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=start + len(nodes) < len(models),
            has_previous_page=start > 0,
            start_cursor=encode_cursor(CURSOR_KIND, nodes[0].id) if nodes else None,
            end_cursor=encode_cursor(CURSOR_KIND, nodes[-1].id) if nodes else None,
        ),
    )


async def models(
    info: Info,
    filter: ModelFilter | None = None,
    first: int | None = DEFAULT_PAGE,
    after: str | None = None,
) -> ModelConnection:
    criteria = _criteria(filter)
    # A filter on one provider waits (on a cold start) for that provider's list only.
    only = None if criteria is None or criteria.provider is None else {criteria.provider}
    index = (await info.context.services.catalog_view(only)).index
    selected = (
        index.nodes
        if criteria is None
        else [node for model, node in index.entries if criteria.matches(model)]
    )
    return paginate_models(selected, first=first, after=after)


async def model(info: Info, id: strawberry.ID) -> Model | None:
    if len(id) > 400:
        raise BadUserInput("id is too long", field="id")
    services = info.context.services
    view = await services.catalog_view(services.catalog.providers_named([str(id)]))
    return view.index.node(str(id).strip())


async def model_catalog(info: Info) -> ModelCatalog:
    return (await info.context.services.catalog_view()).model_catalog()


async def refresh_models(info: Info) -> ModelCatalog:
    info.context.require_admin()
    info.context.services.metrics.catalog_refreshes.inc()
    return (await info.context.services.catalog.refresh()).model_catalog()
