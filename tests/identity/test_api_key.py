"""API keys: generation, hashing, the cheap format check, and the display prefix."""

from __future__ import annotations

import hashlib
import re

import jwt
import pytest

from resolvers.identity.api_key import hash_api_key, key_prefix, looks_like_api_key, new_api_key

SHAPE = re.compile(r"ap_[A-Za-z0-9_-]{43}")


def test_new_key_has_the_documented_shape() -> None:
    key, digest = new_api_key()
    assert SHAPE.fullmatch(key)
    assert len(key) == 46
    assert digest == hashlib.sha256(key.encode()).hexdigest()


def test_new_keys_are_distinct_and_all_pass_the_format_check() -> None:
    keys = [new_api_key()[0] for _ in range(500)]
    assert len(set(keys)) == len(keys)
    assert all(looks_like_api_key(key) for key in keys)


def test_hash_is_sha256_hex_and_deterministic() -> None:
    key = "ap_" + "A" * 43
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_api_key(key) == hash_api_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_api_key(key))
    assert hash_api_key(key) != hash_api_key("ap_" + "A" * 42 + "E")


def test_accepts_a_fixed_well_formed_key() -> None:
    assert looks_like_api_key("ap_" + "Zz09_-" * 7 + "w")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ap_",
        "ap_" + "A" * 42,
        "ap_" + "A" * 44,
        "AP_" + "A" * 43,
        "xx_" + "A" * 43,
        "ap-" + "A" * 43,
        "ap_" + "A" * 42 + "=",
        "ap_" + "A" * 41 + "+A",
        "ap_" + "A" * 41 + "/A",
        "ap_" + "A" * 41 + " A",
        "ap_" + "A" * 41 + "\x00A",
        "ap_" + "A" * 41 + "éA",
        "ap_" + "A" * 43 + "\n",
        "ap_" + "A" * 42 + "B",
        "ap_" + "A" * 10_000,
        jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256"),
        "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..iv.ct.tag",
    ],
    ids=[
        "empty",
        "prefix-only",
        "short",
        "long",
        "upper-prefix",
        "other-prefix",
        "dash-prefix",
        "padding",
        "plus",
        "slash",
        "space",
        "nul",
        "non-ascii",
        "trailing-newline",
        "non-canonical-last-char",
        "huge",
        "jwt",
        "jwe",
    ],
)
def test_rejects_anything_else(value: str) -> None:
    assert not looks_like_api_key(value)


def test_prefix_is_first_ten_characters() -> None:
    key, _ = new_api_key()
    prefix = key_prefix(key)
    assert prefix == key[:10]
    assert prefix.startswith("ap_")
    assert len(prefix) == 10


@pytest.mark.parametrize("value", ["", "ap_short", "Bearer ap_" + "A" * 43])
def test_prefix_refuses_non_keys(value: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        key_prefix(value)
