"""Tokens of every kind, made the way their issuers make them."""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.jwk import OctKey

JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"
NEXTAUTH_SECRET = "nextauth-secret-for-tests-0123456789"


def make_jwt(sub: str, *, secret: str = JWT_SECRET, ttl: float = 300, **claims: object) -> str:
    payload = {"sub": sub, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def make_nextauth(sub: str, *, secret: str = NEXTAUTH_SECRET, ttl: float = 300) -> str:
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"",
        info=b"NextAuth.js Generated Encryption Key",
    ).derive(secret.encode())
    now = int(time.time())
    claims = f'{{"sub":"{sub}","name":"N","iat":{now},"exp":{int(now + ttl)},"jti":"x"}}'
    return jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM"}, claims.encode(), OctKey.import_key(key)
    )
