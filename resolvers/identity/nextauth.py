"""Verify the session tokens NextAuth.js v4 issues by default, and read the user id from them.

NextAuth v4 does not sign its session JWT; it encrypts it: JWE compact serialization with
`alg: "dir"` (the key is used directly, so the encrypted-key segment is empty) and
`enc: "A256GCM"`. The key is HKDF-SHA256 over NEXTAUTH_SECRET with an empty salt and a
fixed info string. AES-GCM authenticates as well as encrypts, so a token that decrypts
under our key was minted by someone holding the secret; the claims inside still have to be
checked (expiry, subject).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import ExceededSizeError, JoseError
from joserfc.jwk import OctKey

from resolvers.errors import (
    ExpiredCredential,
    InvalidCredential,
    MalformedCredential,
)
from resolvers.identity.bearer import MAX_TOKEN_LENGTH
from resolvers.identity.jwt_token import LEEWAY_SECONDS, VerifiedToken, user_id_from_claims

KEY_INFO = b"NextAuth.js Generated Encryption Key"
KEY_LENGTH = 32
ALGORITHM = "dir"
ENCRYPTION = "A256GCM"

# Five base64url segments. The encrypted-key segment may be non-empty here so that a token
# using key wrapping is refused as the wrong algorithm (below), not as malformed.
_SEGMENT = "[A-Za-z0-9_-]"
_COMPACT_JWE = re.compile(rf"{_SEGMENT}+\.{_SEGMENT}*\.{_SEGMENT}+\.{_SEGMENT}*\.{_SEGMENT}+")

# Restricting the registry makes joserfc refuse any other alg/enc (and any "zip"), as a
# second line behind the explicit header check below.
_REGISTRY = jwe.JWERegistry(algorithms=[ALGORITHM, ENCRYPTION])


@functools.lru_cache(maxsize=8)
def derive_nextauth_key(secret: str) -> bytes:
    """The 32-byte content-encryption key NextAuth v4 derives from NEXTAUTH_SECRET."""
    if not secret:
        raise ValueError("NextAuth secret must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_LENGTH, salt=b"", info=KEY_INFO)
    return hkdf.derive(secret.encode("utf-8"))


@functools.lru_cache(maxsize=8)
def _encryption_key(secret: str) -> OctKey:
    return OctKey.import_key(derive_nextauth_key(secret))


def verify_nextauth_token(token: str, *, secret: str, leeway: float = LEEWAY_SECONDS) -> str:
    """Decrypt a NextAuth v4 session token, check its claims, and return its user id (`sub`)."""
    return verify_nextauth_session(token, secret=secret, leeway=leeway).user_id


def verify_nextauth_session(
    token: str, *, secret: str, leeway: float = LEEWAY_SECONDS
) -> VerifiedToken:
    """Decrypt a NextAuth v4 session token, check its claims; its user id and expiry.

    Raises a `CredentialError` subclass on any failure, `ValueError` for an empty secret.
    """
    key = _encryption_key(secret)
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedCredential("token is too long")
    if not _COMPACT_JWE.fullmatch(token):
        raise MalformedCredential("token is not a well-formed NextAuth session token")
    _check_protected_header(token.partition(".")[0])
    try:
        plaintext = jwe.decrypt_compact(token, key, registry=_REGISTRY).plaintext
    except ExceededSizeError as err:
        raise MalformedCredential("token is too large") from err
    except JoseError as err:
        # Wrong secret and tampering look the same here: the GCM tag does not verify.
        raise InvalidCredential("token could not be decrypted") from err
    except ValueError as err:
        # Bad base64 padding, wrong IV or tag length: rejected before any decryption.
        raise MalformedCredential("token is not a well-formed NextAuth session token") from err
    if plaintext is None:
        raise InvalidCredential("token could not be decrypted")
    claims = _parse_claims(plaintext)
    expires = _check_times(claims, now=time.time(), leeway=leeway)
    return VerifiedToken(user_id_from_claims(claims), expires + leeway)


def _check_protected_header(segment: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    # binascii.Error, UnicodeDecodeError and JSONDecodeError are all ValueErrors.
    except ValueError as err:
        raise MalformedCredential("token header is not valid base64url JSON") from err
    if not isinstance(header, dict):
        raise MalformedCredential("token header is not a JSON object")
    if header.get("alg") != ALGORITHM or header.get("enc") != ENCRYPTION:
        raise InvalidCredential("token algorithm is not accepted")


def _parse_claims(plaintext: bytes) -> dict[str, object]:
    try:
        claims = json.loads(plaintext)
    except ValueError as err:
        raise MalformedCredential("token payload is not JSON") from err
    if not isinstance(claims, dict):
        raise MalformedCredential("token payload is not a JSON object")
    return claims


def _numeric_claim(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass, and Python's json accepts NaN/Infinity, either of which
    # would make an expiry comparison meaningless.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCredential(f"token {name!r} claim is not a number")
    return float(value)


def _check_times(claims: dict[str, object], *, now: float, leeway: float) -> float:
    """Refuse an expired or not-yet-valid token; its `exp`."""
    expires = _numeric_claim(claims, "exp")
    if expires is None:
        raise InvalidCredential("token is missing the 'exp' claim")
    if expires <= now - leeway:
        raise ExpiredCredential("token has expired")
    not_before = _numeric_claim(claims, "nbf")
    if not_before is not None and not_before > now + leeway:
        raise InvalidCredential("token is not valid yet")
    return expires
