"""Client store and token issuing. Keyword-only; flush, never commit."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import GatewaySettings
from gateway.errors import ClientNotFound, InvalidClient, ScopeNotGranted, UnauthorizedClient
from gateway.hashing import SecretHasher
from gateway.models import ApiClient, AuditRecord
from gateway.schemas import AuditRead, ClientCreate, ClientCreated, ClientRead, TokenResponse
from gateway.sign_in import SignInGuard
from shared.errors import Forbidden, Unauthorized
from shared.i18n import tr
from shared.identity import ClientKind, Identity

ADMIN_CLIENT_ID = "admin"
TOKEN_AUDIENCE = "cradle-api"
TOKEN_ISSUER = "cradle-gateway"


def to_read(client: ApiClient) -> ClientRead:
    return ClientRead(
        client_id=client.client_id,
        name=client.name,
        kind=client.kind,
        bureau=client.bureau,
        district_code=client.district_code,
        facility_ids=client.facility_ids,
        scopes=client.scopes,
        enabled=client.enabled,
        created_at=client.created_at,
    )


async def ensure_admin_client(
    *, session: AsyncSession, hasher: SecretHasher, secret: str | None
) -> str | None:
    """Create the bootstrap `admin` client, or set its secret when one is given. Returns the secret
    when it was generated here (to be shown once), else None."""
    admin = await session.get(ApiClient, ADMIN_CLIENT_ID)
    generated = None
    if secret is None and admin is None:
        secret = generated = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    if admin is None:
        assert secret is not None
        session.add(
            ApiClient(
                client_id=ADMIN_CLIENT_ID,
                name="Bootstrap administrator",
                kind=ClientKind.admin.value,
                scopes=["admin"],
                secret_hash=hasher.hash(secret),
                created_at=now,
                updated_at=now,
            )
        )
    elif secret is not None and not hasher.verify(admin.secret_hash, secret):
        admin.secret_hash = hasher.hash(secret)
        admin.enabled = True
        admin.updated_at = now
    await session.flush()
    return generated


async def create_client(*, session: AsyncSession, hasher: SecretHasher, data: ClientCreate) -> ClientCreated:
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    client = ApiClient(
        client_id=f"{data.kind.value}-{uuid.uuid4().hex[:12]}",
        name=data.name,
        kind=data.kind.value,
        bureau=data.bureau,
        district_code=data.district_code,
        facility_ids=data.facility_ids,
        scopes=data.scopes,
        secret_hash=await asyncio.to_thread(hasher.hash, secret),
        created_at=now,
        updated_at=now,
    )
    session.add(client)
    await session.flush()
    return ClientCreated(**to_read(client).model_dump(), client_secret=secret)


async def list_clients(*, session: AsyncSession, limit: int, after: str | None) -> list[ApiClient]:
    query = select(ApiClient).order_by(ApiClient.client_id).limit(limit + 1)
    if after is not None:
        query = query.where(ApiClient.client_id > after)
    return list((await session.execute(query)).scalars().all())


async def get_client(*, session: AsyncSession, client_id: str) -> ApiClient:
    client = await session.get(ApiClient, client_id)
    if client is None:
        raise ClientNotFound(tr("No client {client_id}.", client_id=client_id))
    return client


async def disable_client(*, session: AsyncSession, client_id: str) -> ApiClient:
    client = await get_client(session=session, client_id=client_id)
    if client.client_id == ADMIN_CLIENT_ID:
        raise InvalidClient("The bootstrap admin is disabled by restarting with a new CRADLE_ADMIN_SECRET.")
    client.enabled = False
    client.updated_at = datetime.now(UTC)
    await session.flush()
    return client


async def rotate_secret(
    *, session: AsyncSession, hasher: SecretHasher, client_id: str, grace_seconds: int
) -> tuple[ApiClient, str, datetime]:
    """A new secret; the current one stays valid for `grace_seconds` (the one before it, if a
    rotation was still running, ends now). Returns the client, the new secret and the old one's end."""
    client = await get_client(session=session, client_id=client_id)
    if client.client_id == ADMIN_CLIENT_ID:
        raise Forbidden("The bootstrap admin's secret is set with CRADLE_ADMIN_SECRET.")
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    client.previous_secret_hash = client.secret_hash
    client.previous_secret_expires_at = now + timedelta(seconds=grace_seconds)
    client.secret_hash = await asyncio.to_thread(hasher.hash, secret)
    client.updated_at = now
    await session.flush()
    return client, secret, client.previous_secret_expires_at


def _secret_matches(hasher: SecretHasher, client: ApiClient | None, secret: str) -> bool:
    if client is None:
        return hasher.verify(None, secret)
    if hasher.verify(client.secret_hash, secret):
        return True
    ends = client.previous_secret_expires_at
    if client.previous_secret_hash and ends is not None:
        if ends.tzinfo is None:  # SQLite returns it without its offset; it was written in UTC
            ends = ends.replace(tzinfo=UTC)
        if datetime.now(UTC) < ends:
            return hasher.verify(client.previous_secret_hash, secret)
    return False


async def client_enabled(*, session: AsyncSession, client_id: str) -> bool | None:
    """None for a client that does not exist."""
    return (
        await session.execute(select(ApiClient.enabled).where(ApiClient.client_id == client_id))
    ).scalar_one_or_none()


async def issue_token(
    *,
    session: AsyncSession,
    settings: GatewaySettings,
    hasher: SecretHasher,
    guard: SignInGuard,
    address: str,
    client_id: str,
    client_secret: str,
    scopes: list[str] | None = None,
) -> TokenResponse:
    """OAuth2 client credentials → a short-lived HS256 JWT carrying the client's identity, with
    `scopes` (a subset of the client's) or all of its scopes. The sign-in buckets are looked at
    first: a refused attempt costs no database read and no argon2; a failure (a disabled client's
    too) spends them, a success makes (client, address) a known pair (SignInGuard)."""
    attempt = await guard.admit(address=address, account=f"client:{client_id}")
    client = await session.get(ApiClient, client_id)
    ok = await guard.run(attempt, _secret_matches, hasher, client, client_secret)
    await guard.settle(attempt, succeeded=client is not None and ok and client.enabled)
    if client is None or not ok:
        raise InvalidClient("Unknown client or wrong secret.")
    if not client.enabled:
        raise UnauthorizedClient("This client is disabled.")
    if scopes is not None:
        missing = sorted(set(scopes) - set(client.scopes))
        if missing:
            raise ScopeNotGranted(f"Not granted to this client: {', '.join(missing)}.")
    now = int(time.time())
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": client.client_id,
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex,
        "kind": client.kind,
        "bureau": client.bureau,
        "district_code": client.district_code,
        "facility_ids": client.facility_ids,
        "scope": " ".join(client.scopes if scopes is None else [s for s in client.scopes if s in scopes]),
    }
    return sign_token(settings=settings, claims=claims)


def sign_token(*, settings: GatewaySettings, claims: dict[str, object]) -> TokenResponse:
    """HS256 with the active key; its id in the header, so keys can rotate."""
    kid = settings.jwt_active_kid
    token = jwt.encode(
        claims, settings.jwt_keys[kid].get_secret_value(), algorithm="HS256", headers={"kid": kid}
    )
    return TokenResponse(
        access_token=token, expires_in=settings.token_ttl_seconds, scope=str(claims["scope"])
    )


def token_expiry(token: str) -> float:
    """The `exp` of a token `identity_from_token` has already verified."""
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def identity_from_token(*, settings: GatewaySettings, token: str) -> Identity:
    """Signature (by key id), audience, issuer and expiry are all checked; any doubt is a 401."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = settings.jwt_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("The token was not signed by a key this gateway knows.")
        claims = jwt.decode(
            token,
            key.get_secret_value(),
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
        return Identity(
            client_id=claims["sub"],
            kind=claims["kind"],
            bureau=claims.get("bureau"),
            district_code=claims.get("district_code"),
            facility_ids=claims.get("facility_ids") or [],
            scopes=str(claims.get("scope", "")).split(),
            family_id=claims.get("family_id"),
        )
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise Unauthorized("The access token is invalid or expired.") from exc


def to_audit_read(record: AuditRecord) -> AuditRead:
    at = record.at if record.at.tzinfo else record.at.replace(tzinfo=UTC)
    return AuditRead(
        seq=record.seq,
        at=at,
        client_id=record.client_id,
        client_kind=record.client_kind,
        bureau=record.bureau,
        method=record.method,
        path=record.path,
        status=record.status,
        request_id=record.request_id,
        purpose=record.purpose,
        duration_ms=record.duration_us / 1000,
        export=record.export,
        hash=record.hash,
    )


async def list_audit(
    *,
    session: AsyncSession,
    client_id: str | None,
    since: datetime | None,
    path: str | None,
    limit: int,
    before_seq: int | None,
) -> list[AuditRecord]:
    """Newest first; `path` is a prefix. Fetches `limit + 1` rows (the extra one says "more")."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit + 1)
    if client_id is not None:
        query = query.where(AuditRecord.client_id == client_id)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if path is not None:
        escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(AuditRecord.path.like(escaped + "%", escape="\\"))
    if before_seq is not None:
        query = query.where(AuditRecord.seq < before_seq)
    return list((await session.execute(query)).scalars().all())
