"""Turning a request's credentials into the Context's identity (HTTP and websockets)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from aipasta.settings import AuthMode
from documents.errors import DatabaseUnavailable
from providers.redaction import serving_token
from resolvers.context import Context, Services
from resolvers.errors import (
    CredentialError,
    DatabaseUnavailableError,
    GatewayError,
    Unauthenticated,
)
from resolvers.identity.identity import LOCAL_USER, Identity

# Where an edge middleware that already checked the credentials leaves its answer
# (`scope["state"][STATE_KEY]`), so one request is never authenticated twice.
STATE_KEY = "sign_in"


@dataclass(frozen=True)
class SignIn:
    identity: Identity | None
    error: GatewayError | None


async def check_credentials(services: Services, authorization: str | None) -> SignIn:
    """Who `authorization` proves, or why it was refused (no credential: anonymous)."""
    if services.settings.auth is AuthMode.OFF:
        return SignIn(LOCAL_USER, None)
    try:
        return SignIn(await services.authenticator.authenticate(authorization), None)
    except CredentialError as exc:
        return SignIn(None, Unauthenticated(str(exc)))
    except DatabaseUnavailable:
        return SignIn(None, DatabaseUnavailableError("cannot check the API key now"))


def _remember_token(authorization: str | None) -> None:
    """Make the presented credential, whatever it is, redacted from what this request
    sends and logs."""
    if authorization:
        serving_token.set(authorization.partition(" ")[2].strip() or authorization.strip())


async def sign_in(context: Context, authorization: str | None) -> None:
    """Set `identity`, or `auth_error` when a credential was presented and refused."""
    _remember_token(authorization)
    result = await check_credentials(context.services, authorization)
    context.identity, context.auth_error = result.identity, result.error


async def sign_in_request(context: Context, connection: HTTPConnection) -> None:
    """Sign in from the request's `Authorization` header, reusing an earlier check."""
    earlier = connection.scope.get("state", {}).get(STATE_KEY)
    if isinstance(earlier, SignIn):
        _remember_token(connection.headers.get("authorization"))
        context.identity, context.auth_error = earlier.identity, earlier.error
        return
    await sign_in(context, connection.headers.get("authorization"))


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
