"""Small readers for loosely typed upstream JSON: wrong types become defaults, not crashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from providers.model import TEXT

MAX_TEXT = 20_000


def as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_text(value: object, limit: int = MAX_TEXT) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] or None


def as_positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = int(value)
    return number if number > 0 else None


def as_strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    seen: dict[str, None] = {}
    for item in value:
        if isinstance(item, str) and item.strip():
            seen.setdefault(item.strip().lower(), None)
    return tuple(seen)


def modalities(architecture: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """Listed modalities; a chat model that lists none is taken to speak text."""
    return as_strings(architecture.get(key)) or (TEXT,)


def data_list(payload: object) -> list[object] | None:
    """The `data` array of an OpenAI-style listing, or None when the shape is wrong."""
    data = as_mapping(payload).get("data")
    return data if isinstance(data, list) else None
