"""Who is calling. The gateway authenticates clients and forwards each caller to the services as a
short-lived internal token signed with its Ed25519 key; services verify it with the public key, so
a request that did not come through the gateway is refused (401)."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Header, Request, params
from pydantic import BaseModel, Field

from shared.errors import Forbidden, Unauthorized
from shared.i18n import tr
from shared.observability import request_id_of

IDENTITY_HEADER = "x-cradle-identity"
INTERNAL_AUDIENCE = "cradle-internal"
INTERNAL_ISSUER = "cradle-gateway"
INTERNAL_TOKEN_TTL_SECONDS = 60
IDENTITY_LEEWAY_SECONDS = 5
VERIFIED_TOKENS_KEPT = 10_000


class ClientKind(StrEnum):
    bureau = "bureau"
    district = "district"
    operator = "operator"
    app = "app"
    admin = "admin"
    parent = "parent"
    public = "public"  # an anonymous caller of the public paths


ADMIN_SCOPE = "admin"
# Separation of duties: the admin client administers clients (`/v1/admin/clients`) and oversees;
# its `admin` scope stands for these reads and nothing more. Never a write, a review, a ban, an
# ingest, a `*:pii` (unmasked personal data) or `parent`: each of those is a bureau's, a district's,
# an operator's or a family's own act, held by that client explicitly.
ADMIN_OVERSIGHT_SCOPES = frozenset(
    {"registry:read", "workforce:read", "monitoring:read", "guidance:read", "indicators:read", "audit:read"}
)


class Identity(BaseModel):
    client_id: str
    kind: ClientKind
    bureau: str | None = None
    district_code: str | None = None
    facility_ids: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    family_id: str | None = None  # a parent's family, for the guidance service

    def has_scope(self, scope: str) -> bool:
        """The admin client holds `admin` and the oversight reads it implies, whatever else its
        scopes list says; every other client holds exactly what it was granted."""
        if self.kind == ClientKind.admin:
            return ADMIN_SCOPE in self.scopes and (scope == ADMIN_SCOPE or scope in ADMIN_OVERSIGHT_SCOPES)
        return scope in self.scopes and scope != ADMIN_SCOPE

    def is_bureau(self, *departments: str) -> bool:
        """A bureau client of one of these departments. Acting for a department (banning, answering
        a background check, confirming a finding) needs both: the `bureau` field alone proves
        nothing on another kind of client, and the admin client acts for no department."""
        return self.kind == ClientKind.bureau and self.bureau is not None and self.bureau in departments

    def sees_whole_city(self) -> bool:
        """Which facilities (and the records hanging off them) a reader may see: the bureaus and,
        for oversight, the admin client. Visibility only; what a caller may do is its scopes'."""
        return self.kind in (ClientKind.admin, ClientKind.bureau)

    def may_see_facility(self, *, facility_id: str, district_code: str, owner_client_id: str | None) -> bool:
        """Object-level authorization: an operator sees its own facilities, a district its district."""
        if self.sees_whole_city():
            return True
        if self.kind == ClientKind.district:
            return self.district_code is not None and self.district_code == district_code
        if self.kind == ClientKind.operator:
            return facility_id in self.facility_ids or owner_client_id == self.client_id
        return False


PUBLIC_IDENTITY = Identity(client_id="public", kind=ClientKind.public)


def generate_keypair() -> tuple[str, str]:
    """A new (private PEM, public PEM) pair for the internal identity tokens."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


class IdentitySigner:
    def __init__(self, private_pem: str) -> None:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the internal signing key must be an Ed25519 private key")
        self._key = key

    def sign(self, identity: Identity, *, request_id: str | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": INTERNAL_ISSUER,
            "aud": INTERNAL_AUDIENCE,
            "iat": now,
            "exp": now + INTERNAL_TOKEN_TTL_SECONDS,
            "jti": uuid.uuid4().hex,
            "sub": identity.client_id,
            "idn": identity.model_dump(mode="json", exclude_defaults=True),
        }
        if request_id:
            claims["rid"] = request_id
        return jwt.encode(claims, self._key, algorithm="EdDSA")


class IdentityVerifier:
    """Verifies the gateway's identity tokens. The gateway reuses a signed token for a caller's
    requests of a few seconds, so a verified one is kept (by its text, bounded) until it expires:
    one Ed25519 check per token, not per request."""

    def __init__(self, public_pem: str) -> None:
        key = serialization.load_pem_public_key(public_pem.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the internal verify key must be an Ed25519 public key")
        self._key = key
        self._verified: dict[str, tuple[Identity, float]] = {}

    def verify(self, token: str) -> Identity:
        known = self._verified.get(token)
        if known is not None and time.time() <= known[1]:
            return known[0]
        identity, expires_at = self._check(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (identity, expires_at)
        return identity

    def _check(self, token: str) -> tuple[Identity, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["EdDSA"],
                audience=INTERNAL_AUDIENCE,
                issuer=INTERNAL_ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
                leeway=IDENTITY_LEEWAY_SECONDS,
            )
            return Identity.model_validate(claims["idn"]), float(claims["exp"]) + IDENTITY_LEEWAY_SECONDS
        except (jwt.PyJWTError, KeyError, ValueError) as exc:
            raise Unauthorized("The internal identity token is invalid or expired.") from exc


def resolve_caller(request: Request) -> Identity:
    """The verified caller of this request (verified once, then kept on the request)."""
    cached = request.scope.get("state", {}).get("caller")
    if cached is not None:
        return cached
    token = request.headers.get(IDENTITY_HEADER)
    if not token:
        raise Unauthorized("Requests reach Cradle's services only through the gateway.")
    verifier: IdentityVerifier = request.app.state.identity_verifier
    identity = verifier.verify(token)
    request.scope.setdefault("state", {})["caller"] = identity
    return identity


async def current_caller(request: Request) -> Identity:
    """Every service route depends on this: no valid gateway-signed identity, no entry. (Async, so
    FastAPI calls it inline instead of in a worker thread.)"""
    return resolve_caller(request)


CallerDep = Annotated[Identity, Depends(current_caller)]


async def authenticated(caller: CallerDep) -> Identity:
    if caller.kind == ClientKind.public:
        raise Unauthorized("This path needs a token from POST /v1/auth/token.")
    return caller


AuthenticatedDep = Annotated[Identity, Depends(authenticated)]


def scope_guard(scope: str) -> params.Depends:
    """`caller: Annotated[Identity, scope_guard("registry:write")]`: 401 anonymous, 403 without it."""

    async def guard(caller: AuthenticatedDep) -> Identity:
        if not caller.has_scope(scope):
            raise Forbidden(tr("This needs the `{scope}` scope.", scope=scope))
        return caller

    guard.__name__ = f"requires_{scope.replace(':', '_')}"
    return Depends(guard)


def require_bureau(caller: Identity, *departments: str, action: str) -> None:
    """403 unless the caller is a bureau client of one of `departments` (see `Identity.is_bureau`)."""
    if not caller.is_bureau(*departments):
        raise Forbidden(
            tr(
                "{action} is for {departments} bureau clients only.",
                action=action,
                departments=" and ".join(departments),
            )
        )


async def purpose(
    x_purpose: Annotated[str | None, Header(alias="X-Purpose", max_length=600)] = None,
) -> str | None:
    """Why the caller reads personal data (audited with the read). Header bytes arrive as latin-1;
    a purpose written in Chinese was sent as UTF-8, so it is decoded back."""
    if x_purpose is None:
        return None
    try:
        decoded = x_purpose.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        decoded = x_purpose
    cleaned = "".join(c for c in decoded if c.isprintable()).strip()
    return cleaned or None


PurposeDep = Annotated[str | None, Depends(purpose)]


async def request_id(request: Request) -> str:
    return request_id_of(request)


RequestIdDep = Annotated[str, Depends(request_id)]
