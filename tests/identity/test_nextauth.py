"""verify_nextauth_token: NextAuth v4 session tokens (JWE dir + A256GCM, HKDF-derived key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwe
from joserfc.jwk import OctKey

from resolvers.errors import (
    CredentialError,
    ExpiredCredential,
    InvalidCredential,
    MalformedCredential,
)
from resolvers.identity.nextauth import derive_nextauth_key, verify_nextauth_token

# The signature of the `assert_refused` fixture in conftest.py.
Refuse = Callable[..., CredentialError]

SECRET = "nextauth-test-secret-0123456789abcdef"
OTHER_SECRET = "some-other-nextauth-secret-9876543210"
INFO = b"NextAuth.js Generated Encryption Key"

# Produced once with Node's own crypto (hkdfSync + aes-256-gcm), outside this codebase, to pin
# interoperability with what a JavaScript NextAuth deployment emits. The token expires in 2100.
KNOWN_SECRET = "known-answer-nextauth-secret-0123456789"
KNOWN_KEY_HEX = "3bc28efd92f1bcbeb53961b4e2817d90c7956c1b77aeb2dc71a87cca25b88bcd"
KNOWN_TOKEN = (
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..AAECAwQFBgcICQoL."
    "NZeC0Pb5tppQcTyc0oekiGfs0K6e04R4OSBnQGgWB3p6UztsLn_ivXkIYMFwdtgvjMP9teOzTZkd7xPF6G-7utk5"
    "ySiRVeExLfBXIF0ApUES-3XY3nqaE14ukVGE9Cex3J4Xqw7T_oIo-hOConW_Nq-z61ded1atcQTsq0L9QK8rTSBy"
    "PfJb.1vCcC9ruaUXoRL0KeBNe2g"
)


def _hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF with an empty salt, written out with hmac so it shares no code under test."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _key(secret: str = SECRET) -> bytes:
    return _hkdf_sha256(secret.encode(), INFO, 32)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "sub": "user-42",
        "iat": now,
        "exp": now + 30 * 24 * 3600,
        "jti": "2f1e8a44-7c53-4b0e-9d7a-1f6c3e2b5a90",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _encrypt(
    payload: dict[str, Any] | bytes,
    *,
    key: bytes | None = None,
    header: dict[str, Any] | None = None,
    algorithms: list[str] | None = None,
) -> str:
    plaintext = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return jwe.encrypt_compact(
        header or {"alg": "dir", "enc": "A256GCM"},
        plaintext,
        OctKey.import_key(key if key is not None else _key()),
        algorithms=algorithms,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _flip(segment: str) -> str:
    middle = len(segment) // 2
    replacement = "A" if segment[middle] != "A" else "B"
    return segment[:middle] + replacement + segment[middle + 1 :]


def _verify(token: str, secret: str = SECRET, **kwargs: Any) -> Any:
    return lambda: verify_nextauth_token(token, secret=secret, **kwargs)


def test_key_derivation_matches_independent_hkdf() -> None:
    assert derive_nextauth_key(SECRET) == _key(SECRET)
    assert len(derive_nextauth_key(SECRET)) == 32


def test_key_derivation_matches_node_known_answer() -> None:
    assert derive_nextauth_key(KNOWN_SECRET).hex() == KNOWN_KEY_HEX
    assert _key(KNOWN_SECRET).hex() == KNOWN_KEY_HEX


def test_accepts_token_produced_outside_python() -> None:
    assert verify_nextauth_token(KNOWN_TOKEN, secret=KNOWN_SECRET) == "user-42"


def test_derived_key_is_cached_per_secret() -> None:
    derive_nextauth_key.cache_clear()
    first = derive_nextauth_key(SECRET)
    assert derive_nextauth_key(SECRET) is first
    assert derive_nextauth_key.cache_info().hits == 1
    assert derive_nextauth_key(OTHER_SECRET) != first


def test_accepts_valid_token() -> None:
    assert verify_nextauth_token(_encrypt(_claims()), secret=SECRET) == "user-42"


def test_accepts_minimal_claims() -> None:
    token = _encrypt({"sub": "u1", "exp": int(time.time()) + 60})
    assert verify_nextauth_token(token, secret=SECRET) == "u1"


def test_accepts_recently_expired_token_within_leeway() -> None:
    token = _encrypt(_claims(exp=int(time.time()) - 10))
    assert verify_nextauth_token(token, secret=SECRET, leeway=30) == "user-42"


def test_rejects_expired_token(assert_refused: Refuse) -> None:
    token = _encrypt(_claims(exp=int(time.time()) - 120))
    assert_refused(ExpiredCredential, _verify(token), token, SECRET)


def test_rejects_expired_token_with_zero_leeway(assert_refused: Refuse) -> None:
    token = _encrypt(_claims(exp=int(time.time()) - 5))
    assert_refused(ExpiredCredential, _verify(token, leeway=0), token, SECRET)


def test_rejects_wrong_secret(assert_refused: Refuse) -> None:
    token = _encrypt(_claims(), key=_key(OTHER_SECRET))
    assert_refused(InvalidCredential, _verify(token), token, SECRET, OTHER_SECRET)


@pytest.mark.parametrize("segment", [2, 3, 4], ids=["iv", "ciphertext", "tag"])
def test_rejects_tampered_token(assert_refused: Refuse, segment: int) -> None:
    parts = _encrypt(_claims()).split(".")
    parts[segment] = _flip(parts[segment])
    token = ".".join(parts)
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


def test_rejects_tampered_header(assert_refused: Refuse) -> None:
    # Still dir/A256GCM, but the header is the GCM additional data, so it must not verify.
    parts = _encrypt(_claims()).split(".")
    parts[0] = _b64(json.dumps({"alg": "dir", "enc": "A256GCM", "kid": "x"}).encode())
    token = ".".join(parts)
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


@pytest.mark.parametrize(
    ("header", "key_length"),
    [
        ({"alg": "dir", "enc": "A128GCM"}, 16),
        ({"alg": "dir", "enc": "A256CBC-HS512"}, 64),
        ({"alg": "A256KW", "enc": "A256GCM"}, 32),
    ],
    ids=["A128GCM", "A256CBC-HS512", "A256KW"],
)
def test_rejects_other_algorithms(
    assert_refused: Refuse, header: dict[str, str], key_length: int
) -> None:
    key = _hkdf_sha256(SECRET.encode(), INFO, key_length)
    token = _encrypt(_claims(), key=key, header=header, algorithms=[header["alg"], header["enc"]])
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


def test_rejects_alg_none(assert_refused: Refuse) -> None:
    parts = _encrypt(_claims()).split(".")
    parts[0] = _b64(json.dumps({"alg": "none", "enc": "A256GCM"}).encode())
    token = ".".join(parts)
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


def test_rejects_compressed_payload(assert_refused: Refuse) -> None:
    header = {"alg": "dir", "enc": "A256GCM", "zip": "DEF"}
    token = _encrypt(_claims(), header=header, algorithms=["dir", "A256GCM", "DEF"])
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(exp=None),
        _claims(sub=None),
        _claims(sub=""),
        _claims(sub=42),
        _claims(sub="u" * 257),
        _claims(exp="tomorrow"),
        _claims(exp=True),
        _claims(nbf=int(time.time()) + 3600),
    ],
    ids=[
        "missing-exp",
        "missing-sub",
        "empty-sub",
        "non-string-sub",
        "overlong-sub",
        "string-exp",
        "bool-exp",
        "not-yet-valid",
    ],
)
def test_rejects_bad_claims(assert_refused: Refuse, claims: dict[str, Any]) -> None:
    token = _encrypt(claims)
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_rejects_non_finite_exp(assert_refused: Refuse, value: str) -> None:
    # Python's json parses these; an exp of NaN would otherwise never compare as expired.
    token = _encrypt(f'{{"sub": "user-42", "exp": {value}}}'.encode())
    assert_refused(InvalidCredential, _verify(token), token, SECRET)


@pytest.mark.parametrize(
    "payload",
    [b"not json at all", b'["sub", "user-42"]', b"\xff\xfe"],
    ids=["text", "array", "not-utf8"],
)
def test_rejects_payload_that_is_not_a_json_object(assert_refused: Refuse, payload: bytes) -> None:
    token = _encrypt(payload)
    assert_refused(MalformedCredential, _verify(token), token, SECRET)


def test_token_from_raw_aes_gcm_is_accepted() -> None:
    # Encrypt with the cryptography AEAD directly, bypassing joserfc on the producing side.
    header = _b64(json.dumps({"alg": "dir", "enc": "A256GCM"}).encode())
    iv = bytes(range(12))
    sealed = AESGCM(_key()).encrypt(iv, json.dumps(_claims()).encode(), header.encode())
    token = ".".join([header, "", _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])])
    assert verify_nextauth_token(token, secret=SECRET) == "user-42"


def _malformed_cases() -> list[str]:
    parts = _encrypt(_claims()).split(".")
    return [
        "",
        "a.b",
        ".".join(parts[:3]),
        ".".join(parts[:4]),
        ".".join([*parts, "extra"]),
        ".".join([parts[0], parts[1], "!!!", parts[3], parts[4]]),
        ".".join(["bm90LWpzb24", *parts[1:]]),
        ".".join([_b64(b"[1, 2]"), *parts[1:]]),
        ".".join([parts[0], parts[1], "AAAA", parts[3], parts[4]]),
        ".".join([parts[0], parts[1], parts[2], "A" * 20_000, parts[4]]),
    ]


@pytest.mark.parametrize(
    "token",
    _malformed_cases(),
    ids=[
        "empty",
        "two-parts",
        "three-parts",
        "four-parts",
        "six-parts",
        "non-base64",
        "header-not-json",
        "header-not-object",
        "short-iv",
        "huge",
    ],
)
def test_rejects_malformed_strings(assert_refused: Refuse, token: str) -> None:
    assert_refused(MalformedCredential, _verify(token), token, SECRET)


def test_empty_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        verify_nextauth_token(_encrypt(_claims()), secret="")
