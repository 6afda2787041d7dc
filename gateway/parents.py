"""Parents of the mobile app: register and log in with phone and password; a parent token carries
the `parent` scope and, when known, the family link. Keyword-only; flush, never commit."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import GatewaySettings
from gateway.errors import TooManyRequests
from gateway.hashing import SecretHasher
from gateway.models import ParentAccount
from gateway.schemas import ParentLogin, ParentRegister, TokenResponse
from gateway.service import TOKEN_AUDIENCE, TOKEN_ISSUER, sign_token
from shared.errors import Conflict, Unauthorized
from shared.identity import ClientKind

PARENT_PREFIX = "parent-"


class WrongCredentials(Unauthorized):
    title = "Wrong phone number or password"
    type = "/problems/invalid-credentials"


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def parent_token(*, settings: GatewaySettings, parent: ParentAccount) -> TokenResponse:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": parent.parent_id,
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex,
        "kind": ClientKind.parent.value,
        "scope": "parent",
    }
    if parent.family_id:
        claims["family_id"] = parent.family_id
    return sign_token(settings=settings, claims=claims)


async def register(
    *, session: AsyncSession, settings: GatewaySettings, hasher: SecretHasher, data: ParentRegister
) -> TokenResponse:
    taken = await session.execute(select(ParentAccount.parent_id).where(ParentAccount.phone == data.phone))
    if taken.first() is not None:
        raise Conflict("This phone number is already registered; log in instead.")
    now = datetime.now(UTC)
    parent = ParentAccount(
        parent_id=PARENT_PREFIX + uuid.uuid4().hex[:16],
        phone=data.phone,
        password_hash=await asyncio.to_thread(hasher.hash, data.password),
        family_id=data.family_id,
        created_at=now,
        updated_at=now,
    )
    session.add(parent)
    await session.flush()
    return parent_token(settings=settings, parent=parent)


async def login(
    *, session: AsyncSession, settings: GatewaySettings, hasher: SecretHasher, data: ParentLogin
) -> tuple[TokenResponse | None, Exception | None]:
    """Returns the token, or the refusal to raise once the failure count is committed."""
    parent = (
        await session.execute(select(ParentAccount).where(ParentAccount.phone == data.phone))
    ).scalar_one_or_none()
    now = datetime.now(UTC)
    locked_until = _utc(parent.locked_until) if parent else None
    if parent is not None and locked_until is not None and locked_until > now:
        wait = math.ceil((locked_until - now).total_seconds())
        return None, TooManyRequests(
            f"Too many wrong passwords; try again in {wait} s.", headers={"Retry-After": str(wait)}
        )
    ok = await asyncio.to_thread(hasher.verify, parent.password_hash if parent else None, data.password)
    if parent is None or not parent.enabled:
        return None, WrongCredentials("Wrong phone number or password.")
    if not ok:
        parent.failed_logins += 1
        if parent.failed_logins >= settings.parent_max_failures:
            parent.failed_logins = 0
            parent.locked_until = now + timedelta(seconds=settings.parent_lockout_seconds)
        parent.updated_at = now
        await session.flush()
        return None, WrongCredentials("Wrong phone number or password.")
    if parent.failed_logins or parent.locked_until:
        parent.failed_logins = 0
        parent.locked_until = None
        parent.updated_at = now
        await session.flush()
    return parent_token(settings=settings, parent=parent), None
