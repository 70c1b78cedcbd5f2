"""Each request's id: made once, by whichever layer answers first (the edge or the view),
sent back as `X-Request-ID` and written in every log line about the request."""

from __future__ import annotations

import uuid

from starlette.types import Scope

REQUEST_ID_HEADER = "X-Request-ID"
_STATE_KEY = "request_id"


def request_id(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    known = state.get(_STATE_KEY)
    if isinstance(known, str):
        return known
    made = uuid.uuid4().hex
    state[_STATE_KEY] = made
    return made
