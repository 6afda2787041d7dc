from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway import service
from gateway.config import GatewaySettings
from shared.errors import Forbidden, Unauthorized
from shared.identity import PUBLIC_IDENTITY, Identity


def gateway_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


SettingsDep = Annotated[GatewaySettings, Depends(gateway_settings)]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use `Authorization: Bearer <token>` with a token from POST /v1/auth/token.")
    return token.strip()


def optional_caller(request: Request, settings: SettingsDep) -> Identity:
    token = bearer_token(request)
    if token is None:
        return PUBLIC_IDENTITY
    return service.identity_from_token(settings=settings, token=token)


OptionalCallerDep = Annotated[Identity, Depends(optional_caller)]


def admin_caller(caller: OptionalCallerDep) -> Identity:
    if caller is PUBLIC_IDENTITY:
        raise Unauthorized("This path needs a token from POST /v1/auth/token.")
    if "admin" not in caller.scopes:
        raise Forbidden("This needs the `admin` scope.")
    return caller


AdminDep = Annotated[Identity, Depends(admin_caller)]
