"""The Subscription root: field declarations only; resolvers/ does the work."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from resolvers.chat import stream as stream_fields
from schema.chat import ChatStreamEvent


@strawberry.type
class Subscription:
    chat_stream: AsyncGenerator[Any, None] = strawberry.subscription(
        resolver=stream_fields.chat_stream,
        graphql_type=ChatStreamEvent,
        description="Tokens as they are generated, then exactly one ChatCompleted or ChatFailed.",
    )
    compare_stream: AsyncGenerator[Any, None] = strawberry.subscription(
        resolver=stream_fields.compare_stream,
        graphql_type=ChatStreamEvent,
        description=(
            "Several models streamed side by side; every event names its model; "
            "one terminal event per model."
        ),
    )
