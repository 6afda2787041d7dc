from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.config import GatewaySettings
from gateway.frontdoor import Runtime, caller_of
from gateway.hashing import SecretHasher
from gateway.views import Views
from shared.errors import Forbidden, Unauthorized
from shared.i18n import tr
from shared.identity import ClientKind, Identity


def gateway_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


SettingsDep = Annotated[GatewaySettings, Depends(gateway_settings)]


def secret_hasher(request: Request) -> SecretHasher:
    return request.app.state.hasher


HasherDep = Annotated[SecretHasher, Depends(secret_hasher)]


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def optional_caller(request: Request) -> Identity:
    """The front door has authenticated the caller (or refused it) before any route runs."""
    return caller_of(request.scope)


OptionalCallerDep = Annotated[Identity, Depends(optional_caller)]


def requires(scope: str) -> object:
    def guard(caller: OptionalCallerDep) -> Identity:
        if caller.kind == ClientKind.public:
            raise Unauthorized("This path needs a token from POST /v1/auth/token.")
        if not caller.has_scope(scope):
            raise Forbidden(tr("This needs the `{scope}` scope.", scope=scope))
        return caller

    guard.__name__ = f"requires_{scope.replace(':', '_')}"
    return Depends(guard)


def views(request: Request) -> Views:
    return request.app.state.views


ViewsDep = Annotated[Views, Depends(views)]
AdminDep = Annotated[Identity, requires("admin")]
IndicatorReaderDep = Annotated[Identity, requires("indicators:read")]
FacilityReaderDep = Annotated[Identity, requires("registry:read")]
AuditReaderDep = Annotated[Identity, requires("audit:read")]
