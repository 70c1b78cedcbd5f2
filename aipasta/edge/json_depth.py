"""How deeply a JSON text nests, found before decoding it.

`json.loads` recurses once per level: 100,000 nested arrays raise RecursionError (an
HTTP 500 in plain text, a websocket dropped with 1006). This finds the depth in a few
passes at C speed, without recursion: strings are cut out (brackets inside them do not
count), every byte but a bracket is dropped, `{}` is read as `[]` (the decoder's
recursion does not care which), then one possessive regular expression matches groups
nested at most `limit` deep, in linear time. Where it stops, the text either nests too
deeply or is not JSON at all (brackets that do not pair up).
"""

from __future__ import annotations

import functools
import json
import re

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JSONTooDeep(json.JSONDecodeError):
    """Raised instead of decoding: a JSONDecodeError, so callers that refuse bad JSON
    refuse this too."""


@functools.lru_cache(maxsize=4)
def _balanced(limit: int) -> re.Pattern[bytes]:
    """Any run of `[...]` groups nested at most `limit` deep; possessive, so matching is
    linear (nothing is ever tried twice)."""
    group = rb"\[\]"
    for _ in range(limit - 1):
        group = rb"\[(?:" + group + rb")*+\]"
    return re.compile(rb"(?:" + group + rb")*+")


def check_json_depth(data: str | bytes, limit: int) -> None:
    """Raise JSONTooDeep if `data` nests arrays/objects deeper than `limit`, or a
    JSONDecodeError if its brackets do not pair up (it would not decode anyway, and an
    unclosed run of them would still make the decoder recurse)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # cannot nest deeper than it opens
    brackets = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    end = _balanced(limit).match(brackets).end()  # type: ignore[union-attr]
    if end == len(brackets):
        return
    # Everything before `end` pairs up. If the rest has as many `]` as `[` and starts a
    # new group, that group can only have failed by going deeper than the limit.
    if brackets[end] == ord("[") and brackets.count(b"[") == brackets.count(b"]"):
        raise JSONTooDeep(f"JSON nested deeper than {limit} levels", "", 0)
    raise json.JSONDecodeError("Unbalanced brackets", "", 0)
