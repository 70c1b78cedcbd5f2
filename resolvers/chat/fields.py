"""The `chat` and `compare` mutations: whole answers."""

from __future__ import annotations

import asyncio
import contextlib

from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.prepare import (
    PreparedChat,
    prepare_chat,
    prepare_compare,
    start_run,
)
from resolvers.chat.results import chat_result, compare_result
from resolvers.chat.run import RunResult, log_failed_run
from resolvers.context import Context, Info
from schema.types.chat import ChatResult, CompareResult
from schema.types.inputs import ChatInput, CompareInput


async def run_to_end(
    context: Context, prepared: PreparedChat, index: int, writer: ExchangeWriter
) -> tuple[RunResult, str | None]:
    """Drive one run to its end; a cancelled request (the client gone, or past the
    operation timeout) closes its upstream request and still records and saves what it
    got."""
    models = prepared.models if index < 0 else [prepared.models[index]]
    run = start_run(context, prepared.conversation, models)
    try:
        async with contextlib.aclosing(run.deltas()) as deltas:
            async for _ in deltas:
                pass
    except asyncio.CancelledError:
        writer.finish_later(run.result(cancelled=True))
        raise
    result = run.result()
    # The answer is whole: a client leaving from now on does not cut its save short.
    return result, await writer.finish_shielded(result)


async def chat(info: Info, input: ChatInput) -> ChatResult:
    context = info.context
    context.require_user()
    context.allow_up_to(context.services.settings.chat_total_timeout + 5)
    prepared = await prepare_chat(context, input)
    writer = prepared.writer(context, request_id=context.request_id)
    result, message_id = await run_to_end(context, prepared, -1, writer)
    if result.error is not None:
        raise result.error
    return chat_result(result, message_id)


async def compare(info: Info, input: CompareInput) -> list[CompareResult]:
    context = info.context
    context.require_user()
    context.allow_up_to(context.services.settings.chat_total_timeout + 5)
    prepared = await prepare_compare(context, input)
    writer = prepared.writer(context, request_id=context.request_id)
    outcomes = await asyncio.gather(
        *(run_to_end(context, prepared, i, writer) for i in range(len(prepared.models)))
    )
    results = []
    for model, (result, message_id) in zip(prepared.models, outcomes, strict=True):
        if result.error is not None:
            log_failed_run(result, context.request_id)
        results.append(compare_result(model.id, result, message_id))
    return results
