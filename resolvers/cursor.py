"""Opaque pagination cursors: base64 of a kind tag and a key, never an offset.

Keyed cursors stay correct when the list changes between pages (a catalog refresh,
a new message), where offsets would skip or repeat items.
"""

from __future__ import annotations

import base64
import binascii

from resolvers.errors import BadUserInput

MAX_CURSOR_LENGTH = 1024


def encode_cursor(kind: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, field: str) -> str:
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadUserInput(f"`{field}` is not a valid cursor", field=field)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        raise BadUserInput(f"`{field}` is not a valid cursor", field=field) from None
    tag, sep, key = text.partition(":")
    if tag != kind or not sep:
        raise BadUserInput(f"`{field}` is not a valid cursor", field=field)
    return key
