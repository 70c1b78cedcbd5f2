"""GraphQL enums: the plain Python enums the resolvers use, registered with Strawberry.

strawberry.enum() marks the class in place, so the same class serves both layers.
"""

from __future__ import annotations

import strawberry

from resolvers.enums import ChatRole, MessageStatus, UsageGroupBy
from resolvers.errors import ErrorCode

for _enum in (ErrorCode, ChatRole, MessageStatus, UsageGroupBy):
    strawberry.enum(_enum)

__all__ = ["ChatRole", "ErrorCode", "MessageStatus", "UsageGroupBy"]
