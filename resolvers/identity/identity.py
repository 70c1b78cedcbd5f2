"""Who a request acts for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class AuthMethod(StrEnum):
    API_KEY = "api_key"
    JWT = "jwt"
    NEXTAUTH = "nextauth"
    LOCAL = "local"


@dataclass(frozen=True)
class Identity:
    user_id: str
    role: Role = Role.USER
    via: AuthMethod = AuthMethod.API_KEY
    # Epoch seconds from which a token credential (JWT, NextAuth) is refused; None for
    # credentials that do not expire on their own (API keys are revoked instead).
    expires_at: float | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


LOCAL_USER = Identity(user_id="local", role=Role.ADMIN, via=AuthMethod.LOCAL)
