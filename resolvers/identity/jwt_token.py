"""Verify HS256 JSON Web Tokens signed with a shared secret, and read the user id from them.

Only HS256 is accepted: the allow-list is what stops `alg: none` and algorithm-confusion
tokens (e.g. an RS256 header verified with our secret as if it were a public key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from resolvers.errors import (
    ExpiredCredential,
    InvalidCredential,
    MalformedCredential,
)
from resolvers.identity.bearer import MAX_TOKEN_LENGTH
from resolvers.validation import is_storable

ALGORITHM = "HS256"
MAX_USER_ID_LENGTH = 256
# How far past `exp` (and before `nbf`) a token is still accepted: clock skew between
# the issuer and us.
LEEWAY_SECONDS = 30.0


@dataclass(frozen=True)
class VerifiedToken:
    user_id: str
    # Epoch seconds from which the token is refused: its `exp` plus the leeway.
    expires_at: float


def user_id_from_claims(claims: Mapping[str, object]) -> str:
    """The `sub` claim, which must be a non-empty string of at most 256 characters."""
    subject = claims.get("sub")
    if subject is None:
        raise InvalidCredential("token has no subject")
    # The id is later used as a database key, so anything but a bounded string that
    # MongoDB can store is refused here rather than trusted downstream.
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > MAX_USER_ID_LENGTH
        or not is_storable(subject)
    ):
        raise InvalidCredential("token subject is not a valid user id")
    return subject


def verify_jwt(
    token: str,
    *,
    secret: str,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = LEEWAY_SECONDS,
) -> str:
    """Check the token's signature and claims; return its user id (`sub`)."""
    return verify_jwt_token(
        token, secret=secret, audience=audience, issuer=issuer, leeway=leeway
    ).user_id


def verify_jwt_token(
    token: str,
    *,
    secret: str,
    audience: str | None = None,
    issuer: str | None = None,
    leeway: float = LEEWAY_SECONDS,
) -> VerifiedToken:
    """Check the token's signature and claims; return its user id and when it stops working.

    `exp` is always required; `aud` and `iss` are checked only when configured, so a
    deployment that does not set them still accepts tokens that carry them.
    Raises a `CredentialError` subclass on any failure, `ValueError` for an empty secret.
    """
    if not secret:
        # An empty HMAC key lets anyone mint valid tokens; that is a configuration bug.
        raise ValueError("JWT secret must not be empty")
    # PyJWT would base64-decode and HMAC a token of any size before refusing it.
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedCredential("token is too long")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError as err:
        raise ExpiredCredential("token has expired") from err
    except jwt.InvalidSignatureError as err:
        raise InvalidCredential("token signature is invalid") from err
    except jwt.InvalidAlgorithmError as err:
        raise InvalidCredential("token algorithm is not accepted") from err
    except jwt.MissingRequiredClaimError as err:
        raise InvalidCredential(f"token is missing the {err.claim!r} claim") from err
    except jwt.InvalidAudienceError as err:
        raise InvalidCredential("token audience is not accepted") from err
    except jwt.InvalidIssuerError as err:
        raise InvalidCredential("token issuer is not accepted") from err
    except jwt.ImmatureSignatureError as err:
        raise InvalidCredential("token is not valid yet") from err
    # InvalidSignatureError is a DecodeError too, so this must come after it.
    except jwt.DecodeError as err:
        raise MalformedCredential("token is not a well-formed JWT") from err
    except jwt.InvalidTokenError as err:
        raise InvalidCredential("token claims are invalid") from err
    return VerifiedToken(user_id_from_claims(claims), float(claims["exp"]) + leeway)
