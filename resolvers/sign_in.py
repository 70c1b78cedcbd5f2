"""Turning a request's credentials into the Context's identity (HTTP and websockets)."""

from __future__ import annotations

from aipasta.settings import AuthMode
from documents.errors import DatabaseUnavailable
from resolvers.context import Context
from resolvers.errors import DatabaseUnavailableError, Unauthenticated
from resolvers.identity.errors import CredentialError
from resolvers.identity.identity import LOCAL_USER


async def sign_in(context: Context, authorization: str | None) -> None:
    """Set `identity`, or `auth_error` when a credential was presented and refused."""
    services = context.services
    if services.settings.auth is AuthMode.OFF:
        context.identity, context.auth_error = LOCAL_USER, None
        return
    try:
        context.identity = await services.authenticator.authenticate(authorization)
        context.auth_error = None
    except CredentialError as exc:
        context.identity, context.auth_error = None, Unauthenticated(str(exc))
    except DatabaseUnavailable:
        context.identity = None
        context.auth_error = DatabaseUnavailableError("cannot check the API key now")


def connection_authorization(params: dict[str, object] | None) -> str | None:
    """The `Authorization` entry of a websocket `connection_init` payload, if any."""
    if not params:
        return None
    for name in ("Authorization", "authorization"):
        if name in params:
            value = params[name]
            if not isinstance(value, str):
                raise CredentialError("Authorization must be a string")
            return value
    return None
