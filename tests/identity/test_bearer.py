"""parse_authorization and classify: shape checks on the Authorization header."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resolvers.errors import CredentialError, MalformedCredential
from resolvers.identity.api_key import new_api_key
from resolvers.identity.bearer import classify, parse_authorization

# The signature of the `assert_refused` fixture in conftest.py.
Refuse = Callable[..., CredentialError]

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"
JWE = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAECAwQFBgcICQoL.Y2lwaGVy.dGFn"


@pytest.mark.parametrize("header", [None, "", "   ", "\t \t"])
def test_absent_or_blank_header_means_no_credential(header: str | None) -> None:
    assert parse_authorization(header) is None


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {JWT}",
        f"bearer {JWT}",
        f"BEARER {JWT}",
        f"BeArEr {JWT}",
        f"  Bearer {JWT}  ",
        f"Bearer    {JWT}",
        f"\tBearer\t{JWT}\t",
    ],
)
def test_extracts_token(header: str) -> None:
    assert parse_authorization(header) == JWT


def test_extracts_each_kind_of_credential() -> None:
    key, _ = new_api_key()
    for token in (key, JWT, JWE, "abc~+/=="):
        assert parse_authorization(f"Bearer {token}") == token


def test_accepts_token_of_exactly_8_kib() -> None:
    token = "a" * 8192
    assert parse_authorization(f"Bearer {token}") == token


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {JWT}",
        f"Token {JWT}",
        f"Bearer: {JWT}",
        f"Bearer{JWT}",
        JWT,
        "Bearer",
        "Bearer   ",
        "bearer\t",
        "Bearer " + "a" * 8193,
        f"Bearer {JWT}\x00",
        f"Bearer {JWT}\x1f",
        f"Bearer {JWT}\r\nX-Injected: 1",
        f"Bearer \x7f{JWT}",
        f"Bearer {JWT} extra",
        f"Bearer {JWT}é",
    ],
    ids=[
        "basic",
        "other-scheme",
        "colon",
        "no-space",
        "no-scheme",
        "scheme-only",
        "scheme-and-spaces",
        "scheme-and-tab",
        "over-8-kib",
        "nul",
        "unit-separator",
        "crlf",
        "del",
        "two-words",
        "non-ascii",
    ],
)
def test_rejects_malformed_header(assert_refused: Refuse, header: str) -> None:
    assert_refused(MalformedCredential, lambda: parse_authorization(header), JWT, "a" * 64)


def test_classifies_api_key() -> None:
    key, _ = new_api_key()
    assert classify(key) == "api_key"


def test_classifies_jwe_and_jwt() -> None:
    assert classify(JWE) == "jwe"
    assert classify(JWT) == "jwt"


@pytest.mark.parametrize(
    "token",
    ["", "opaque", "a.b", "a.b.c.d", "a.b.c.d.e.f", "ap_tooshort", "ap_" + "A" * 44],
)
def test_classify_rejects_other_shapes(assert_refused: Refuse, token: str) -> None:
    assert_refused(MalformedCredential, lambda: classify(token), token)
