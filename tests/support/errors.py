"""Every error carries `extensions.requestId`: tests check it, then compare the rest exactly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def without_request_id(
    extensions: Mapping[str, Any] | None, request_id: str | None = None
) -> dict[str, Any]:
    """`extensions` less its `requestId`, which must be there: equal to `request_id`
    (the response's X-Request-ID) when given, else a new id (32 hex digits)."""
    rest = dict(extensions or {})
    made = rest.pop("requestId")
    if request_id is None:
        assert isinstance(made, str) and REQUEST_ID.fullmatch(made), made
    else:
        assert made == request_id
    return rest


def body_without_request_id(
    body: Mapping[str, Any], request_id: str | None = None
) -> dict[str, Any]:
    """A GraphQL answer with each error's `extensions` checked by `without_request_id`."""
    errors = [
        {**error, "extensions": without_request_id(error["extensions"], request_id)}
        for error in body["errors"]
    ]
    return {**body, "errors": errors}
