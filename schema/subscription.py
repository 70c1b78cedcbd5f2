"""The Subscription root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers.chat import stream as stream_fields
from schema.types.chat import ChatStreamEvent


@strawberry.type
class Subscription:
    chat_stream: AsyncGenerator[ChatStreamEvent, None] = strawberry.subscription(
        resolver=stream_fields.chat_stream,
        description="Tokens as they are generated, then exactly one ChatCompleted or ChatFailed.",
    )
    compare_stream: AsyncGenerator[ChatStreamEvent, None] = strawberry.subscription(
        resolver=stream_fields.compare_stream,
        description=(
            "Several models streamed side by side; every event names its model; "
            "one terminal event per model."
        ),
    )
