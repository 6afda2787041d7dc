"""The two search paths, answered straight from the directory.

`GET /v1/public/facilities` and `GET /v1/facilities` are the registry's hottest requests, and with
the directory in memory FastAPI's dependency resolution (a dozen query parameters, the identity,
the scope) cost more than the search itself. This pure ASGI layer sits innermost of the app's
middleware — request ids, metrics, body limits and localisation still apply — and answers a plain
request itself: every parameter well-formed, a valid gateway identity with the scope the route
asks for, the directory current. Anything else goes on to the routes, which answer it as they
always have (a 422 naming the parameter, a 401, a 403, a 503 while the database is away), so the
behaviour stays the routes'; only the common case is shorter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from services.registry.config import RegistrySettings
from services.registry.router.facilities import parse_near
from services.registry.schemas import AgeClass, AssessmentGrade, FacilityKind, FacilityStatus, ServiceMode
from services.registry.service.directory import FacilityDirectory
from services.registry.service.search import FacilityFilters
from shared.errors import CradleError
from shared.export import JSON, negotiate_export
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentityVerifier
from shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageParams, decode_cursor

_IDENTITY = IDENTITY_HEADER.encode()
_ENUMS: dict[str, Callable[[str], object]] = {
    "kind": FacilityKind,
    "status": FacilityStatus,
    "free_places": AgeClass,
    "service_mode": ServiceMode,
    "grade": AssessmentGrade,
}
_DIGITS = {"district_code": 6, "town_code": 9}
_FLAGS = {"true": True, "false": False}


@dataclass(frozen=True)
class SearchRoute:
    route: APIRoute  # named on the request, so metrics count it under its template
    public: bool
    scope: str | None  # what the caller must hold (the authenticated route)


class _Refer(Exception):
    """Not a plain request: the route answers it."""


def _digits(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise _Refer
    return int(value)


def _filters(params: dict[str, str], settings: RegistrySettings) -> tuple[FacilityFilters, PageParams]:
    values: dict[str, object] = {}
    for name, convert in _ENUMS.items():
        if name in params:
            try:
                values[name] = convert(params[name])
            except ValueError:
                raise _Refer from None
    for name, length in _DIGITS.items():
        if name in params:
            text = params[name]
            if len(text) != length:
                raise _Refer
            _digits(text)
            values[name] = text
    for flag in ("inclusive", "demonstration"):
        if flag in params:
            if params[flag] not in _FLAGS:
                raise _Refer
            values[flag] = _FLAGS[params[flag]]
    radius = _digits(params["radius_m"]) if "radius_m" in params else None
    near = params.get("near")
    if near is not None and len(near) > 64:
        raise _Refer
    limit = _digits(params["limit"]) if "limit" in params else DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise _Refer
    cursor = params.get("cursor")
    if cursor is not None and (not cursor or len(cursor) > 512):
        raise _Refer
    try:  # the routes' own parsing of these two, not a copy
        values["near"] = parse_near(near, radius, settings)
        after = decode_cursor(cursor) if cursor else None
    except CradleError:
        raise _Refer from None
    return FacilityFilters(**values), PageParams(limit=limit, after=after)  # type: ignore[arg-type]


def _wants_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            try:
                return negotiate_export(value.decode("latin-1")) == JSON
            except CradleError:
                return False
    return True


class DirectSearch:
    def __init__(self, app: ASGIApp, *, routes: dict[str, SearchRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if path is None or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        directory: FacilityDirectory = state.directory
        try:
            if directory.stale or not _wants_json(scope):
                raise _Refer  # an export (or an Accept to refuse) is the route's
            caller = self._caller(scope, state.identity_verifier, path)
            filters, page = _filters(self._params(scope), state.settings)
        except _Refer:
            await self.app(scope, receive, send)
            return
        try:
            body = await directory.search(caller=caller, filters=filters, page=page, public=path.public)
        except Exception:  # the database away (an authenticated search reads the
            # revision first): the route answers instead, whose handlers make it a 503, never a 500.
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        scope["route"] = path.route
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _params(scope: Scope) -> dict[str, str]:
        params: dict[str, str] = {}
        for name, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
            if name in params or not value:
                raise _Refer  # repeated or empty: the route's validation decides
            params[name] = value
        return params

    @staticmethod
    def _caller(scope: Scope, verifier: IdentityVerifier, path: SearchRoute) -> Identity:
        token = next((v for k, v in scope["headers"] if k == _IDENTITY), None)
        if token is None:
            raise _Refer
        try:
            caller = verifier.verify(token.decode("latin-1"))
        except CradleError:
            raise _Refer from None
        if path.scope is not None and (caller.kind == ClientKind.public or not caller.has_scope(path.scope)):
            raise _Refer
        return caller
