"""The `chatStream` and `compareStream` subscriptions: answers token by token.

Each model's stream is ChatDelta events (index from 0, consecutive), then exactly one
ChatCompleted or ChatFailed. When the client goes away (disconnect or `complete`),
the generator is closed: the upstream request is abandoned at once, and what was
generated is recorded and saved (PARTIAL) in the background.
"""

# No `from __future__ import annotations`: Strawberry cannot resolve a required lazy
# argument (Annotated["X", strawberry.lazy(...)]) from a stringified annotation.

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Annotated

import strawberry

from providers.model import ModelInfo
from resolvers.chat_finish import ExchangeWriter
from resolvers.chat_prepare import PreparedChat, prepare_chat, prepare_compare, start_run
from resolvers.chat_views import CompletedEvent, DeltaEvent, FailedEvent, terminal_event
from resolvers.coalesce import coalesce
from resolvers.context import Context, Info

if TYPE_CHECKING:
    from schema.inputs import ChatInput, CompareInput

_INPUTS = "schema.inputs"

StreamEvent = DeltaEvent | CompletedEvent | FailedEvent


async def _model_events(
    context: Context,
    prepared: PreparedChat,
    models: list[ModelInfo],
    writer: ExchangeWriter,
) -> AsyncGenerator[StreamEvent, None]:
    run = start_run(context, prepared.conversation, models)
    window = context.services.settings.stream_coalesce_ms / 1000
    requested = models[0].id
    finished = False
    try:
        index = 0
        async with contextlib.aclosing(coalesce(run.deltas(), window)) as pieces:
            async for piece in pieces:
                yield DeltaEvent(model=run.model.id, content=piece, index=index)
                index += 1
        result = run.result()
        finished = True
        message_id = await writer.finish(result)
        yield terminal_event(requested, result, message_id)
    finally:
        if not finished:
            writer.finish_later(run.result(cancelled=True))


async def chat_stream(
    info: Info, input: Annotated["ChatInput", strawberry.lazy(_INPUTS)]
) -> AsyncGenerator[StreamEvent, None]:
    context = info.context
    context.require_user()
    prepared = await prepare_chat(
        context,
        model=input.model,
        fallbacks=input.fallbacks,
        messages=input.messages,
        options=input.options,
        session_id=input.session_id,
    )
    writer = ExchangeWriter(
        context.services,
        user_id=context.require_user().user_id,
        request_id=context.request_id,
        conversation=prepared.conversation,
        model_count=1,
    )
    async with contextlib.aclosing(
        _model_events(context, prepared, prepared.models, writer)
    ) as events:
        async for event in events:
            yield event


async def compare_stream(
    info: Info, input: Annotated["CompareInput", strawberry.lazy(_INPUTS)]
) -> AsyncGenerator[StreamEvent, None]:
    context = info.context
    context.require_user()
    prepared = await prepare_compare(
        context,
        models=input.models,
        messages=input.messages,
        options=input.options,
        session_id=input.session_id,
    )
    writer = ExchangeWriter(
        context.services,
        user_id=context.require_user().user_id,
        request_id=context.request_id,
        conversation=prepared.conversation,
        model_count=len(prepared.models),
    )
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

    async def forward(model: ModelInfo) -> None:
        # One model failing ends only its own stream: its terminal event says so.
        async with contextlib.aclosing(_model_events(context, prepared, [model], writer)) as events:
            async for event in events:
                queue.put_nowait(event)
        queue.put_nowait(None)

    tasks = [asyncio.create_task(forward(m), name=f"compare-{m.id}") for m in prepared.models]
    try:
        remaining = len(tasks)
        while remaining:
            event = await queue.get()
            if event is None:
                remaining -= 1
            else:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
