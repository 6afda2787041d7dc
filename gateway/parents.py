"""Parents of the mobile app: register and log in with phone and password; a parent token carries
the `parent` scope and, when known, the family link. Phone numbers are kept encrypted and found by
keyed hash. Keyword-only; flush, never commit (the login's router commits between its two steps)."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gateway.config import GatewaySettings
from gateway.errors import TooManyRequests
from gateway.hashing import SecretHasher
from gateway.models import ParentAccount
from gateway.schemas import ParentRegister, TokenResponse
from gateway.service import TOKEN_AUDIENCE, TOKEN_ISSUER, sign_token
from gateway.sign_in import SignInAttempt, SignInGuard
from shared.errors import Conflict, Unauthorized
from shared.identity import ClientKind
from shared.pii import KeyedHasher, PiiCipher
from shared.pii_keys import SealedColumn

PARENT_PREFIX = "parent-"
PHONE = "parent.phone"  # the cipher's context: a sealed phone copied into another column won't open
# Every encrypted field of the gateway, for the start-up key check and `cradle keys rotate`.
SEALED_COLUMNS = (SealedColumn("parent_account", "phone_key_id", "phone_encrypted", PHONE, "parent_id"),)


class WrongCredentials(Unauthorized):
    title = "Wrong phone number or password"
    type = "/problems/invalid-credentials"


@dataclass(frozen=True)
class PhoneKeys:
    """The keys of parents' phone numbers (GATEWAY_PII_*), built once in the lifespan."""

    cipher: PiiCipher
    lookup: KeyedHasher

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> PhoneKeys:
        return cls(cipher=settings.cipher(), lookup=settings.hasher())


@dataclass(frozen=True)
class LoginClaim:
    """One login attempt, counted before its password is checked. `parent_id` None: no such phone
    (the password is still checked, against a dummy hash, so the answer takes as long)."""

    attempt: SignInAttempt
    parent_id: str | None = None
    password_hash: str | None = None
    enabled: bool = False
    family_id: str | None = None
    failures: int = 0  # the count this attempt brought the account to


def _locked_for(seconds: float) -> TooManyRequests:
    wait = max(1, math.ceil(seconds))
    return TooManyRequests(
        f"Too many wrong passwords; try again in {wait} s.", headers={"Retry-After": str(wait)}
    )


def _unlocked(now: datetime) -> ColumnElement[bool]:
    return or_(ParentAccount.locked_until.is_(None), ParentAccount.locked_until <= now)


def parent_token(*, settings: GatewaySettings, parent_id: str, family_id: str | None) -> TokenResponse:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": parent_id,
        "iat": now,
        "exp": now + settings.token_ttl_seconds,
        "jti": uuid.uuid4().hex,
        "kind": ClientKind.parent.value,
        "scope": "parent",
    }
    if family_id:
        claims["family_id"] = family_id
    return sign_token(settings=settings, claims=claims)


async def register(
    *,
    session: AsyncSession,
    settings: GatewaySettings,
    hasher: SecretHasher,
    guard: SignInGuard,
    phones: PhoneKeys,
    address: str,
    data: ParentRegister,
) -> TokenResponse:
    # Registration hashes a password on the general lane, refused to an address whose failures
    # emptied its bucket; asking for a phone that is taken counts as a failure (it is how numbers
    # would be enumerated), a new account does not.
    attempt = await guard.admit(address=address, account=None)
    phone_hash = phones.lookup.digest(data.phone)
    taken = select(ParentAccount.parent_id).where(ParentAccount.phone_hash == phone_hash)
    if (await session.execute(taken)).first() is not None:
        await guard.settle(attempt, succeeded=False)
        raise Conflict("This phone number is already registered; log in instead.")
    now = datetime.now(UTC)
    sealed = phones.cipher.encrypt(data.phone, context=PHONE)
    parent = ParentAccount(
        parent_id=PARENT_PREFIX + uuid.uuid4().hex[:16],
        phone_hash=phone_hash,
        phone_key_id=sealed.key_id,
        phone_encrypted=sealed.ciphertext,
        password_hash=await guard.run(attempt, hasher.hash, data.password),
        family_id=data.family_id,
        created_at=now,
        updated_at=now,
    )
    session.add(parent)
    try:
        await session.flush()
    except IntegrityError:  # the same phone registered at the same moment
        raise Conflict("This phone number is already registered; log in instead.") from None
    # Whoever set the password from here is known here: a login from this address takes the known lane.
    await guard.remember(account=_account(phone_hash), address=address)
    return parent_token(settings=settings, parent_id=parent.parent_id, family_id=parent.family_id)


async def claim_login(
    *,
    session: AsyncSession,
    settings: GatewaySettings,
    guard: SignInGuard,
    phones: PhoneKeys,
    address: str,
    phone: str,
) -> LoginClaim:
    """Count the attempt before any argon2 work, in one statement (`failed_logins + 1 … RETURNING`),
    so parallel attempts each see their own count: at most `parent_max_failures` of them get a
    password check before the lock. A right password resets the count afterwards (`login`).
    Raises TooManyRequests when the address or account has failed too often or the account is locked.

    A known pair (this phone signed in from this address recently) is neither counted nor stopped by
    the lock: the lock is what strangers' guesses set, and it must not lock the owner out from where
    the owner signs in (OWASP: lock out untrusted clients only). Its own guesses are held by the
    bucket of its pair (SignInGuard)."""
    phone_hash = phones.lookup.digest(phone)
    attempt = await guard.admit(address=address, account=_account(phone_hash))
    if attempt.known:
        found = (
            await session.execute(
                select(
                    ParentAccount.parent_id,
                    ParentAccount.password_hash,
                    ParentAccount.enabled,
                    ParentAccount.family_id,
                ).where(ParentAccount.phone_hash == phone_hash)
            )
        ).first()
        if found is None:
            return LoginClaim(attempt)
        return LoginClaim(attempt, *found)
    now = datetime.now(UTC)
    counted = (
        await session.execute(
            update(ParentAccount)
            .where(ParentAccount.phone_hash == phone_hash, _unlocked(now))
            .values(failed_logins=ParentAccount.failed_logins + 1, updated_at=now)
            .returning(
                ParentAccount.parent_id,
                ParentAccount.failed_logins,
                ParentAccount.password_hash,
                ParentAccount.enabled,
                ParentAccount.family_id,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if counted is None:
        locked_until = (
            await session.execute(
                select(ParentAccount.locked_until).where(ParentAccount.phone_hash == phone_hash)
            )
        ).scalar_one_or_none()
        if locked_until is not None and locked_until > now:
            raise _locked_for((locked_until - now).total_seconds())
        return LoginClaim(attempt)
    parent_id, failures, password_hash, enabled, family_id = counted
    if failures > settings.parent_max_failures:
        # The allowance is spent by attempts still being checked: lock now, without checking this one.
        await _lock(session=session, settings=settings, parent_id=parent_id, now=now)
        raise _locked_for(settings.parent_lockout_seconds)
    return LoginClaim(attempt, parent_id, password_hash, enabled, family_id, failures)


def _account(phone_hash: str) -> str:
    return f"parent:{phone_hash}"


async def _lock(*, session: AsyncSession, settings: GatewaySettings, parent_id: str, now: datetime) -> None:
    await session.execute(
        update(ParentAccount)
        .where(ParentAccount.parent_id == parent_id, _unlocked(now))
        .values(
            failed_logins=0,
            locked_until=now + timedelta(seconds=settings.parent_lockout_seconds),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


async def login(
    *,
    session: AsyncSession,
    settings: GatewaySettings,
    hasher: SecretHasher,
    guard: SignInGuard,
    claim: LoginClaim,
    password: str,
) -> tuple[TokenResponse | None, Exception | None]:
    """Check the password of a counted attempt. Returns the token, or the refusal to raise once the
    lock (if this failure set one) is committed."""
    ok = await guard.run(claim.attempt, hasher.verify, claim.password_hash, password)
    succeeded = ok and claim.parent_id is not None and claim.enabled
    await guard.settle(claim.attempt, succeeded=succeeded)
    if claim.parent_id is None or not claim.enabled:
        return None, WrongCredentials("Wrong phone number or password.")
    now = datetime.now(UTC)
    if not ok:
        if not claim.attempt.known and claim.failures >= settings.parent_max_failures:
            await _lock(session=session, settings=settings, parent_id=claim.parent_id, now=now)
        return None, WrongCredentials("Wrong phone number or password.")
    # A right password clears the count (this attempt's too), but not a lock others' failures set since.
    await session.execute(
        update(ParentAccount)
        .where(ParentAccount.parent_id == claim.parent_id, _unlocked(now))
        .values(failed_logins=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return parent_token(settings=settings, parent_id=claim.parent_id, family_id=claim.family_id), None
