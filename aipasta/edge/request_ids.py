"""Each request's id: made once, by whichever layer answers first (the edge or the view),
sent back as `X-Request-ID` and written in every log line about the request."""

from __future__ import annotations

import re
import uuid

from starlette.types import Scope

REQUEST_ID_HEADER = "X-Request-ID"
_STATE_KEY = "request_id"
# What an id from a trusted proxy may be: a token, safe in a header and a log line.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def adopt_request_id(scope: Scope, incoming: str | None) -> None:
    """Use `incoming` (a trusted proxy's id) as this request's, if it is a safe token."""
    if incoming is not None and _SAFE_ID.fullmatch(incoming):
        scope.setdefault("state", {})[_STATE_KEY] = incoming


def request_id(scope: Scope) -> str:
    state = scope.setdefault("state", {})
    known = state.get(_STATE_KEY)
    if isinstance(known, str):
        return known
    made = uuid.uuid4().hex
    state[_STATE_KEY] = made
    return made
