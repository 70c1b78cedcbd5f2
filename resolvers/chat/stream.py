"""The `chatStream` and `compareStream` subscriptions: answers token by token.

Each model's stream is ChatDelta (answer text), ChatReasoningDelta (thinking) and
ChatToolCallDelta (pieces of tool calls) events, each kind with its own `index` from 0,
consecutive, in the order the upstream sent them; then exactly one ChatCompleted or
ChatFailed. When the client goes away (disconnect or `complete`),
the generator is closed: the upstream request is abandoned at once, and what was
generated is recorded and saved (PARTIAL) in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator

from starlette.websockets import WebSocket

from providers.model import ModelInfo
from resolvers.chat.coalesce import coalesce_batches
from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.prepare import (
    PreparedChat,
    prepare_chat,
    prepare_compare,
    start_run,
)
from resolvers.chat.results import terminal_event
from resolvers.chat.run import Piece, PieceKind, log_failed_run, merge_pieces
from resolvers.context import Context, Info
from resolvers.monitoring.operation_facts import own_request_id
from schema.types.chat import ChatDelta, ChatReasoningDelta, ChatStreamEvent, ChatToolCallDelta
from schema.types.inputs import ChatInput, CompareInput


def _operation_id(context: Context) -> str:
    """The request id for one subscription's usage records. A websocket's context (and
    its request id) is shared by every subscription on that connection, so each
    subscription gets its own id."""
    return own_request_id() if isinstance(context.request, WebSocket) else context.request_id


def _piece_size(piece: Piece) -> int:
    """What a piece waiting to be sent holds in memory."""
    return sys.getsizeof(piece) + sys.getsizeof(piece.text)


class _Numbering:
    """Each kind of delta counts its own events from 0."""

    def __init__(self) -> None:
        self._next = dict.fromkeys(PieceKind, 0)

    def event(self, model: str, piece: Piece) -> ChatStreamEvent:
        index = self._next[piece.kind]
        self._next[piece.kind] = index + 1
        if piece.kind is PieceKind.REASONING:
            return ChatReasoningDelta(model=model, content=piece.text, index=index)
        if piece.kind is PieceKind.TOOL_CALL:
            return ChatToolCallDelta(
                model=model,
                index=index,
                tool_call_index=piece.tool_call,
                id=piece.id,
                name=piece.name,
                arguments_delta=piece.text,
            )
        return ChatDelta(model=model, content=piece.text, index=index)


async def _model_events(
    context: Context,
    prepared: PreparedChat,
    models: list[ModelInfo],
    writer: ExchangeWriter,
    *,
    buffer_bytes: int,
) -> AsyncGenerator[ChatStreamEvent, None]:
    run = start_run(context, prepared.conversation, models)
    window = context.services.settings.stream_coalesce_ms / 1000
    requested = models[0].id
    finished = False
    try:
        numbering = _Numbering()
        # Bounded read-ahead: a client that stops reading pauses the upstream read.
        deltas = coalesce_batches(run.deltas(), window, max_bytes=buffer_bytes, size=_piece_size)
        async with contextlib.aclosing(deltas) as batches:
            async for batch in batches:
                for piece in merge_pieces(batch):
                    yield numbering.event(run.model.id, piece)
        result = run.result()
        finished = True
        log_failed_run(result, writer.request_id)
        message_id = await writer.finish_shielded(result)
        yield terminal_event(requested, result, message_id)
    finally:
        if not finished:
            writer.finish_later(run.result(cancelled=True))


async def chat_stream(info: Info, input: ChatInput) -> AsyncGenerator[ChatStreamEvent, None]:
    context = info.context
    user_id = context.require_user().user_id
    # Taken before anything else, so a user over the cap never reaches an upstream.
    async with context.services.rate_limiter.stream_slot(user_id):
        prepared = await prepare_chat(context, input)
        writer = prepared.writer(context, request_id=_operation_id(context))
        buffer_bytes = context.services.settings.stream_buffer_bytes
        async with contextlib.aclosing(
            _model_events(context, prepared, prepared.models, writer, buffer_bytes=buffer_bytes)
        ) as events:
            async for event in events:
                yield event


async def compare_stream(info: Info, input: CompareInput) -> AsyncGenerator[ChatStreamEvent, None]:
    context = info.context
    user_id = context.require_user().user_id
    # One comparison is one stream, however many models it runs.
    async with (
        context.services.rate_limiter.stream_slot(user_id),
        contextlib.aclosing(_compare_events(context, input)) as events,
    ):
        async for event in events:
            yield event


async def _compare_events(
    context: Context, input: CompareInput
) -> AsyncGenerator[ChatStreamEvent, None]:
    prepared = await prepare_compare(context, input)
    writer = prepared.writer(context, request_id=_operation_id(context))
    # The stream's read-ahead is shared by its models, and each model waits with its
    # next event until the one before it was taken: memory stays bounded per stream.
    buffer_bytes = context.services.settings.stream_buffer_bytes // len(prepared.models)
    queue: asyncio.Queue[ChatStreamEvent | Exception | None] = asyncio.Queue(maxsize=1)

    async def forward(model: ModelInfo) -> None:
        # One model failing ends only its own stream: its terminal event says so.
        # An unexpected error is handed over and raised (as chatStream would), rather
        # than leaving the stream waiting forever for this model's end.
        try:
            async with contextlib.aclosing(
                _model_events(context, prepared, [model], writer, buffer_bytes=buffer_bytes)
            ) as events:
                async for event in events:
                    await queue.put(event)
        except Exception as exc:  # noqa: BLE001 - re-raised by the consumer below
            await queue.put(exc)
        else:
            await queue.put(None)

    tasks = [asyncio.create_task(forward(m), name=f"compare-{m.id}") for m in prepared.models]
    try:
        remaining = len(tasks)
        while remaining:
            event = await queue.get()
            if event is None:
                remaining -= 1
            elif isinstance(event, Exception):
                raise event
            else:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
