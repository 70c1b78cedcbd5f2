"""Why a credential was refused.

    CredentialError            base; catch this to answer "unauthenticated"
    ├── MalformedCredential    not shaped like any credential we accept
    ├── ExpiredCredential      well-formed and authentic, but past its expiry
    ├── InvalidCredential      bad signature, wrong secret/audience/issuer/algorithm,
    │                          tampered, or required claims (sub, exp) missing
    └── RevokedCredential      authentic, but its owner withdrew it (e.g. a deleted API key)

The message of every one of these is meant to reach the client, so it names only the
reason: never the token, the secret, or anything decoded from the token. Detail for the
operator travels in the chained `__cause__`, which goes to logs, not to responses.
"""

from __future__ import annotations


class CredentialError(Exception):
    """A credential was refused; `str(error)` is safe to show to the client."""


class MalformedCredential(CredentialError):
    """The credential cannot even be parsed (wrong scheme, wrong shape, bad encoding)."""


class ExpiredCredential(CredentialError):
    """The credential was genuine but has expired; the client should sign in again."""


class InvalidCredential(CredentialError):
    """The credential parsed but is not authentic or lacks what we require."""


class RevokedCredential(CredentialError):
    """The credential is authentic but has been revoked by its owner or an operator."""
