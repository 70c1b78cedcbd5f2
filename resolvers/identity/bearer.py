"""Pull a bearer token out of an `Authorization` header, and tell which kind of credential it is.

These are shape checks only; nothing here says whether a credential is genuine.
"""

from __future__ import annotations

import re
from typing import Literal

from resolvers.errors import MalformedCredential
from resolvers.identity.api_key import looks_like_api_key

MAX_TOKEN_LENGTH = 8 * 1024

CredentialKind = Literal["api_key", "jwe", "jwt"]

# RFC 6750 b64token. Anything else (spaces, control characters, non-ASCII) cannot be one of
# our credentials, and refusing it here keeps it out of logs and lookups further on.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

_OWS = " \t"
_OWS_RUN = re.compile(r"[ \t]+")

_JWE_PARTS = 5
_JWT_PARTS = 3


def parse_authorization(header: str | None) -> str | None:
    """The token of a `Bearer <token>` header; None when there is no header or it is blank.

    The scheme is matched case-insensitively and surrounding whitespace is ignored.
    Raises `MalformedCredential` for another scheme, a missing or oversized token, or a
    token with characters a bearer token cannot contain.
    """
    if header is None:
        return None
    # Only HTTP's own whitespace (space, tab) is trimmed: str.strip() would also swallow
    # control characters, which must be refused rather than silently dropped.
    value = header.strip(_OWS)
    if not value:
        return None
    scheme, *rest = _OWS_RUN.split(value, maxsplit=1)
    if scheme.lower() != "bearer":
        raise MalformedCredential("unsupported authorization scheme; use Bearer")
    token = rest[0] if rest else ""
    if not token:
        raise MalformedCredential("bearer token is empty")
    # Length first, so the character check never scans an oversized value.
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedCredential("bearer token is too long")
    if not _B64TOKEN.fullmatch(token):
        raise MalformedCredential("bearer token contains invalid characters")
    return token


def classify(token: str) -> CredentialKind:
    """Which verifier a token belongs to, judged by its shape alone."""
    if looks_like_api_key(token):
        return "api_key"
    parts = token.count(".") + 1
    if parts == _JWE_PARTS:
        return "jwe"
    if parts == _JWT_PARTS:
        return "jwt"
    raise MalformedCredential("credential is not an API key, JWT or JWE")
