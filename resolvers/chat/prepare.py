"""From a chat or compare input to checked conversations and resolved models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from providers.model import ModelInfo
from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.inputs import (
    Conversation,
    check_conversation,
    check_readable,
    resolve_model,
    resolve_models,
)
from resolvers.chat.run import ChatRun, RetryRules
from resolvers.context import Context
from resolvers.errors import BadUserInput
from schema.types.inputs import ChatInput, CompareInput


@dataclass(frozen=True)
class PreparedChat:
    conversation: Conversation
    models: list[ModelInfo]
    is_comparison: bool = False

    def writer(self, context: Context, *, request_id: str) -> ExchangeWriter:
        """Records and saves this request's outcome; a comparison counts its models."""
        return ExchangeWriter(
            context.services,
            user_id=context.require_user().user_id,
            request_id=request_id,
            conversation=self.conversation,
            model_count=len(self.models) if self.is_comparison else 1,
        )


async def prepare_chat(context: Context, input: ChatInput) -> PreparedChat:
    settings = context.services.settings
    conversation = check_conversation(input.messages, input.options, input.session_id, settings)
    services = context.services
    # A model of a provider whose list is in never waits for another provider's.
    view = await services.catalog_view(
        services.catalog.providers_named([input.model, *(input.fallbacks or ())])
    )
    models = resolve_models(view, input.model, input.fallbacks)
    _check_models(conversation, models)
    return PreparedChat(conversation=conversation, models=models)


async def prepare_compare(context: Context, input: CompareInput) -> PreparedChat:
    settings = context.services.settings
    models = input.models
    if not models:
        raise BadUserInput("name at least one model", field="input.models")
    if len(models) > settings.max_compare:
        raise BadUserInput(f"at most {settings.max_compare} models at once", field="input.models")
    conversation = check_conversation(input.messages, input.options, input.session_id, settings)
    services = context.services
    view = await services.catalog_view(services.catalog.providers_named(models))
    resolved = [resolve_model(view, m, f"input.models[{i}]") for i, m in enumerate(models)]
    if len({m.id for m in resolved}) != len(resolved):
        raise BadUserInput("each model may be named once", field="input.models")
    _check_models(conversation, resolved)
    return PreparedChat(conversation=conversation, models=resolved, is_comparison=True)


def _check_models(conversation: Conversation, models: Sequence[ModelInfo]) -> None:
    for candidate in models:
        check_readable(conversation, candidate)
        # Refuses maxTokens beyond the model's limits, and tools, reasoning or structured
        # output where its catalog entry says it has none: before any upstream call.
        conversation.request_for(candidate)


def start_run(context: Context, conversation: Conversation, models: Sequence[ModelInfo]) -> ChatRun:
    settings = context.services.settings
    return ChatRun(
        conversation,
        models,
        context.services.chat,
        rules=RetryRules(
            backoff=settings.chat_retry_backoff,
            max_wait=settings.chat_retry_max_wait,
            sleep=context.services.retry_sleep,
        ),
        redactor=context.services.redactor,
    )
