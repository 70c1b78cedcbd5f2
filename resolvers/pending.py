"""Contract fields whose work belongs to later milestones.

They exist so the frontend can be written against the whole contract today, and they
answer with a NOT_IMPLEMENTED error, never with made-up data.
"""

# No `from __future__ import annotations` here: Strawberry cannot resolve a required
# lazy argument (Annotated["X", strawberry.lazy(...)]) from a stringified annotation.

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers.context import Info
from resolvers.enums import UsageGroupBy
from resolvers.errors import NotImplementedYet

if TYPE_CHECKING:
    from schema.inputs import ChatInput, CompareInput, SaveMessageInput

_INPUTS = "schema.inputs"


async def chat_sessions(info: Info, first: int | None = 20, after: str | None = None) -> Any:
    raise NotImplementedYet("chatSessions")


async def chat_history(
    info: Info, session_id: strawberry.ID, last: int | None = 50, before: str | None = None
) -> Any:
    raise NotImplementedYet("chatHistory")


async def usage(
    info: Info,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: UsageGroupBy | None = UsageGroupBy.MODEL,
) -> Any:
    raise NotImplementedYet("usage")


async def chat(info: Info, input: Annotated["ChatInput", strawberry.lazy(_INPUTS)]) -> Any:
    raise NotImplementedYet("chat")


async def compare(info: Info, input: Annotated["CompareInput", strawberry.lazy(_INPUTS)]) -> Any:
    raise NotImplementedYet("compare")


async def save_message(
    info: Info,
    input: Annotated["SaveMessageInput", strawberry.lazy(_INPUTS)],
) -> Any:
    raise NotImplementedYet("saveMessage")


async def delete_chat_session(info: Info, session_id: strawberry.ID) -> Any:
    raise NotImplementedYet("deleteChatSession")


async def rename_chat_session(info: Info, session_id: strawberry.ID, title: str) -> Any:
    raise NotImplementedYet("renameChatSession")


async def chat_stream(
    info: Info,
    input: Annotated["ChatInput", strawberry.lazy(_INPUTS)],
) -> AsyncGenerator[Any, None]:
    raise NotImplementedYet("chatStream")
    yield  # pragma: no cover - makes this an async generator


async def compare_stream(
    info: Info,
    input: Annotated["CompareInput", strawberry.lazy(_INPUTS)],
) -> AsyncGenerator[Any, None]:
    raise NotImplementedYet("compareStream")
    yield  # pragma: no cover
