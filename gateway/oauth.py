"""The OAuth 2.0 token endpoint (RFC 6749, client credentials grant) and the authorization server's
metadata (RFC 8414). Its errors are RFC 6749 §5.2 JSON (`{"error", "error_description"}`), the one
documented exception to problem+json, because that is what OAuth client libraries read. Rate limits
(429) and outages (503) stay problem+json: they are HTTP's, not OAuth's."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, Headers

from gateway import service
from gateway.errors import InvalidClient, ScopeNotGranted, UnauthorizedClient
from gateway.schemas import SCOPES, TokenResponse
from gateway.sign_in import SignInGuard
from shared.service import SessionDep

TOKEN_PATH = "/v1/auth/token"
METADATA_PATH = "/.well-known/oauth-authorization-server"
FORM = "application/x-www-form-urlencoded"
# Every token reply, a refusal too, is never stored by a cache on the way (RFC 6749 §5.1).
NO_STORE = ((b"cache-control", b"no-store"), (b"pragma", b"no-cache"))
GRANT_TYPES = ("client_credentials",)
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Parents sign in with a phone and password (POST /v1/auth/parents/login), never with this grant.
CLIENT_SCOPES = tuple(sorted(SCOPES - {"parent"}))
CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_SECRET = 256
# RFC 6749 §3.3: scope = scope-token *( SP scope-token ), scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$")
BASIC_CHALLENGE = 'Basic realm="cradle"'

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
]

OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "enum": list(ErrorCode.__args__),  # type: ignore[attr-defined]
        },
        "error_description": {"type": "string"},
    },
    "description": "RFC 6749 §5.2: the token endpoint's errors (the one exception to problem+json).",
    "examples": [{"error": "invalid_client", "error_description": "Unknown client or wrong secret."}],
}


class OAuthError(Exception):
    def __init__(self, error: ErrorCode, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": BASIC_CHALLENGE} if self.status == 401 else None
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


@dataclass(frozen=True, slots=True)
class TokenRequest:
    client_id: str
    client_secret: str
    scopes: list[str] | None = field(default=None)  # None: every scope the client holds


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: `Basic base64(urlencode(id) ":" urlencode(secret))`. None when the header
    uses another scheme; invalid_request when it is Basic but cannot be read."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise OAuthError("invalid_request", "The Basic credentials are not base64 of UTF-8 text.") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_request", "The Basic credentials hold no `:` between id and secret.")
    return unquote_plus(client_id), unquote_plus(secret)


def _single(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise OAuthError("invalid_request", f"`{name}` is given more than once.")
    if not values:
        return None
    value = values[0]
    if not isinstance(value, str):
        raise OAuthError("invalid_request", f"`{name}` must be a form field.")
    return value


def read_token_request(headers: Headers, form: FormData) -> TokenRequest:
    """Everything RFC 6749 asks of a client credentials request, checked in the order a client
    can fix it: the form, the grant type, the client's authentication, the scope."""
    grant_type = _single(form, "grant_type")
    form_id = _single(form, "client_id")
    form_secret = _single(form, "client_secret")
    scope = _single(form, "scope")
    basic = None
    authorization = headers.get("authorization")
    if authorization is not None:
        basic = _basic_credentials(authorization)
        if basic is None:
            raise OAuthError(
                "invalid_client",
                "Authenticate with HTTP Basic (client id and secret) or the client_id and "
                "client_secret form fields.",
                status=401,
            )
    if basic is not None and (form_secret is not None or (form_id is not None and form_id != basic[0])):
        raise OAuthError(
            "invalid_request", "Use one way to authenticate the client: HTTP Basic or the form fields."
        )
    if not grant_type:
        raise OAuthError("invalid_request", "`grant_type` is missing (client_credentials is issued here).")
    if grant_type not in GRANT_TYPES:
        raise OAuthError("unsupported_grant_type", "Only the `client_credentials` grant is issued here.")
    if basic is not None:
        client_id, secret = basic
    elif form_id is not None and form_secret is not None:
        client_id, secret = form_id, form_secret
    else:
        raise OAuthError(
            "invalid_client",
            "No client authentication: HTTP Basic, or the client_id and client_secret form fields.",
            status=401,
        )
    if not CLIENT_ID.match(client_id):
        raise OAuthError("invalid_request", "The client id is 1 to 64 letters, digits or `._:-`.")
    if not secret or len(secret) > MAX_SECRET:
        raise OAuthError("invalid_request", f"The client secret is 1 to {MAX_SECRET} characters.")
    scopes = None
    if scope is not None:
        if not SCOPE.match(scope):
            raise OAuthError("invalid_scope", "`scope` is scope names separated by single spaces.")
        scopes = list(dict.fromkeys(scope.split(" ")))
        unknown = sorted(set(scopes) - set(CLIENT_SCOPES))
        if unknown:
            raise OAuthError("invalid_scope", f"Unknown scope(s): {', '.join(unknown)}.")
    return TokenRequest(client_id=client_id, client_secret=secret, scopes=scopes)


router = APIRouter()

TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "TokenRequest",
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "client_id": {
            "type": "string",
            "description": "With client_secret, unless the client authenticates with HTTP Basic.",
        },
        "client_secret": {"type": "string"},
        "scope": {
            "type": "string",
            "description": "Space-separated; a subset of the client's scopes (default: all of them).",
        },
    },
    "examples": [
        {
            "grant_type": "client_credentials",
            "client_id": "operator-3f2a9c1d7e4b",
            "client_secret": "s3cr3t-shown-once",
            "scope": "registry:read registry:write",
        }
    ],
}
TOKEN_REQUEST_REF = {"$ref": "#/components/schemas/TokenRequest"}
NO_STORE_HEADERS = {
    "Cache-Control": {"schema": {"type": "string", "const": "no-store"}},
    "Pragma": {"schema": {"type": "string", "const": "no-cache"}},
}
OAUTH_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}


@router.post(
    TOKEN_PATH,
    response_model=TokenResponse,
    tags=["auth"],
    openapi_extra={
        # The schema itself joins the document's components in gateway/openapi.py's merge.
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": {"$ref": "#/components/schemas/TokenRequest"}}},
        },
        "security": [{"clientBasic": []}, {}],
        "responses": {
            "200": {"description": "A bearer token", "headers": NO_STORE_HEADERS},
            "400": {
                "description": "invalid_request, unsupported_grant_type, unauthorized_client or "
                "invalid_scope (RFC 6749 §5.2)",
                "headers": NO_STORE_HEADERS,
                "content": OAUTH_ERROR,
            },
            "401": {
                "description": "invalid_client: unknown client, wrong secret, or no client authentication",
                "headers": NO_STORE_HEADERS | {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": OAUTH_ERROR,
            },
        },
    },
)
async def issue_token(request: Request, session: SessionDep) -> JSONResponse:
    """OAuth 2.0 client credentials (RFC 6749 §4.4): a short-lived bearer token for the client's
    scopes (or the `scope` asked for, a subset of them). The client authenticates with HTTP Basic
    or the `client_id` and `client_secret` form fields, never both. Failed attempts are limited per
    address and per client (429 with Retry-After, before any secret is checked); a client that
    signed in from this address recently is checked on a lane of its own."""
    try:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            raise OAuthError("invalid_request", f"The request body must be `{FORM}`.")
        try:
            form = await request.form(max_files=0, max_fields=16, max_part_size=4096)
        except Exception as exc:  # python-multipart's refusals of a malformed body
            raise OAuthError("invalid_request", "The form body cannot be read.") from exc
        wanted = read_token_request(request.headers, form)
        # The front door audits this call under the client id tried (a failure too), never the secret.
        request.state.audit_client_id = wanted.client_id
        state = request.app.state  # not gateway.deps: the front door imports this module
        guard: SignInGuard = state.sign_in
        token = await service.issue_token(
            session=session,
            settings=state.settings,
            hasher=state.hasher,
            guard=guard,
            address=request.client.host if request.client else "unknown",
            client_id=wanted.client_id,
            client_secret=wanted.client_secret,
            scopes=wanted.scopes,
        )
    except InvalidClient as exc:
        description = exc.detail or "Unknown client or wrong secret."
        return OAuthError("invalid_client", description, status=401).response()
    except UnauthorizedClient as exc:
        return OAuthError("unauthorized_client", exc.detail or "This client may not get tokens.").response()
    except ScopeNotGranted as exc:
        return OAuthError("invalid_scope", exc.detail or "Scope not granted.").response()
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(token.model_dump())


@router.get(METADATA_PATH, tags=["auth"])
async def authorization_server_metadata(request: Request) -> dict[str, Any]:
    """RFC 8414 metadata: where the token endpoint is and what it accepts. The issuer is the
    address this was asked at (behind a proxy, as uvicorn's forwarded headers give it). No
    `jwks_uri`: tokens are signed with the gateway's symmetric keys, which are never published."""
    issuer = str(request.base_url).rstrip("/")
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "response_types_supported": [],
        "scopes_supported": list(CLIENT_SCOPES),
        "service_documentation": issuer + "/docs",
    }
