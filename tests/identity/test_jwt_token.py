"""verify_jwt: HS256 only, exp and sub required, aud/iss only when configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from resolvers.errors import (
    CredentialError,
    ExpiredCredential,
    InvalidCredential,
    MalformedCredential,
)
from resolvers.identity.jwt_token import verify_jwt

# The signature of the `assert_refused` fixture in conftest.py.
Refuse = Callable[..., CredentialError]

# 64 bytes, so that signing the HS512 token below does not warn about key length.
SECRET = "test-jwt-secret-" + "x" * 49
OTHER_SECRET = "other-jwt-secret-" + "y" * 47


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "user-123", "exp": int(time.time()) + 600}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _make(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _hand_made(header: dict[str, Any], claims: dict[str, Any], *, secret: str = SECRET) -> str:
    """A token with any header, HMAC-SHA256-signed with `secret`, built without PyJWT."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _flip(segment: str) -> str:
    """Change one character in the middle of a base64url segment to another valid one."""
    middle = len(segment) // 2
    replacement = "A" if segment[middle] != "A" else "B"
    return segment[:middle] + replacement + segment[middle + 1 :]


def test_accepts_valid_token() -> None:
    assert verify_jwt(_make(_claims()), secret=SECRET) == "user-123"


def test_accepts_configured_audience_and_issuer() -> None:
    token = _make(_claims(aud="aipasta", iss="https://auth.example"))
    assert verify_jwt(token, secret=SECRET, audience="aipasta", issuer="https://auth.example")


def test_ignores_aud_and_iss_when_not_configured() -> None:
    token = _make(_claims(aud="someone-else", iss="https://elsewhere.example"))
    assert verify_jwt(token, secret=SECRET) == "user-123"


def test_accepts_recently_expired_token_within_leeway() -> None:
    token = _make(_claims(exp=int(time.time()) - 10))
    assert verify_jwt(token, secret=SECRET, leeway=30) == "user-123"


def test_accepts_subject_of_maximum_length() -> None:
    assert verify_jwt(_make(_claims(sub="u" * 256)), secret=SECRET) == "u" * 256


def test_rejects_expired_token(assert_refused: Refuse) -> None:
    token = _make(_claims(exp=int(time.time()) - 120))
    assert_refused(ExpiredCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_rejects_expired_token_with_zero_leeway(assert_refused: Refuse) -> None:
    token = _make(_claims(exp=int(time.time()) - 5))
    assert_refused(
        ExpiredCredential, lambda: verify_jwt(token, secret=SECRET, leeway=0), token, SECRET
    )


@pytest.mark.parametrize("segment", [1, 2], ids=["payload", "signature"])
def test_rejects_tampered_token(assert_refused: Refuse, segment: int) -> None:
    parts = _make(_claims()).split(".")
    parts[segment] = _flip(parts[segment])
    token = ".".join(parts)
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_rejects_wrong_secret(assert_refused: Refuse) -> None:
    token = _make(_claims(), secret=OTHER_SECRET)
    assert_refused(
        InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET, OTHER_SECRET
    )


def test_rejects_alg_none(assert_refused: Refuse) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    token = f"{header}.{payload}."
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_rejects_hs512(assert_refused: Refuse) -> None:
    token = _make(_claims(), algorithm="HS512")
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_rejects_rs256_header_signed_with_the_secret(assert_refused: Refuse) -> None:
    # The algorithm-confusion shape: a public-key alg in the header, HMAC'd with our secret.
    token = _hand_made({"alg": "RS256", "typ": "JWT"}, _claims())
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_hand_made_hs256_token_is_accepted() -> None:
    # Guards the test above: the same construction with the right alg does verify.
    token = _hand_made({"alg": "HS256", "typ": "JWT"}, _claims())
    assert verify_jwt(token, secret=SECRET) == "user-123"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "user-123"},
        {"exp": int(time.time()) + 600},
        {"sub": "", "exp": int(time.time()) + 600},
        {"sub": 123, "exp": int(time.time()) + 600},
        {"sub": "u" * 257, "exp": int(time.time()) + 600},
    ],
    ids=["missing-exp", "missing-sub", "empty-sub", "non-string-sub", "overlong-sub"],
)
def test_rejects_bad_required_claims(assert_refused: Refuse, claims: dict[str, Any]) -> None:
    token = _make(claims)
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


@pytest.mark.parametrize(
    ("claims", "audience", "issuer"),
    [
        ({"aud": "other"}, "aipasta", None),
        ({}, "aipasta", None),
        ({"iss": "https://evil.example"}, None, "https://auth.example"),
        ({}, None, "https://auth.example"),
    ],
    ids=["wrong-aud", "missing-aud", "wrong-iss", "missing-iss"],
)
def test_rejects_audience_or_issuer_mismatch(
    assert_refused: Refuse, claims: dict[str, Any], audience: str | None, issuer: str | None
) -> None:
    token = _make(_claims(**claims))

    def call() -> str:
        return verify_jwt(token, secret=SECRET, audience=audience, issuer=issuer)

    assert_refused(InvalidCredential, call, token, SECRET)


def test_rejects_header_without_alg(assert_refused: Refuse) -> None:
    token = _hand_made({"typ": "JWT"}, _claims())
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_rejects_token_not_valid_yet(assert_refused: Refuse) -> None:
    token = _make(_claims(nbf=int(time.time()) + 3600))
    assert_refused(InvalidCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",
        "aaaa.bbbb.cccc.dddd",
        "not-base64!.also not base64?.%%%",
        "bm90LWpzb24.e30.e30",
        "eyJhbGciOiJIUzI1NiJ9." + "A" * 100_000 + ".sig",
    ],
    ids=["empty", "two-parts", "four-parts", "non-base64", "header-not-json", "huge"],
)
def test_rejects_malformed_strings(assert_refused: Refuse, token: str) -> None:
    assert_refused(MalformedCredential, lambda: verify_jwt(token, secret=SECRET), token, SECRET)


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        verify_jwt(_make(_claims()), secret="")
