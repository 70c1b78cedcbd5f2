"""API keys: how they look, how they are made, and how they are stored.

A key is `ap_` followed by 32 random bytes in unpadded base64url (46 characters in all).
Only its SHA-256 is stored. A plain unsalted hash is enough because the key carries 256
bits of randomness, so there is nothing to brute-force, and it keeps lookup a single
indexed equality match. The first 10 characters are kept in clear as a label so users can
tell their keys apart and revoke one.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "ap_"
RANDOM_BYTES = 32
PREFIX_DISPLAY_LENGTH = 10

# 32 bytes encode to 43 base64url characters; the last one carries only 2 data bits
# (the other 4 are zero), so it can only be one of 16 characters.
_API_KEY = re.compile(r"ap_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
API_KEY_LENGTH = len(PREFIX) + 43


def new_api_key() -> tuple[str, str]:
    """A fresh key and its SHA-256 hex hash; show the key once, store only the hash."""
    key = PREFIX + secrets.token_urlsafe(RANDOM_BYTES)
    return key, hash_api_key(key)


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest under which a key is stored and looked up."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_api_key(value: str) -> bool:
    """Whether `value` has the exact shape of a key we issue (no database involved).

    Callers use this before any lookup, so JWTs and garbage never reach the database.
    """
    return len(value) == API_KEY_LENGTH and _API_KEY.fullmatch(value) is not None


def key_prefix(key: str) -> str:
    """The first 10 characters (including `ap_`), shown in listings to identify a key."""
    if not looks_like_api_key(key):
        raise ValueError("not an API key")
    return key[:PREFIX_DISPLAY_LENGTH]
