"""What every part of the guidance service shares: its personal-data keys, Shanghai's calendar,
divisions, and who may see which family."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.config import GuidanceSettings
from services.guidance.models import Family, FamilyLink, PiiAccess, Town

# Still importable from here for cradle/seed (the clock itself is shared/clock.py).
from shared.clock import shanghai_today as shanghai_today
from shared.errors import Forbidden, invalid
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pii import PiiVault
from shared.pii_audit import may_unmask, record_unmasked_read

# AES-GCM associated data: a ciphertext only decrypts in the kind of field it was made for.
PHONE = "guardian.phone"
LINK_CODE = "family.link_code"
PII_SCOPE = "guidance:pii"
READ_SCOPE = "guidance:read"
WRITE_SCOPE = "guidance:write"
PARENT_SCOPE = "parent"


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), on the month's last day when it has no such day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, candidate)
        except ValueError:
            continue
    raise ValueError("unreachable")


def age_in_months(birth: date, today: date) -> int:
    months = (today.year - birth.year) * 12 + today.month - birth.month
    return months - 1 if add_months(birth, months) > today else months


@dataclass(frozen=True)
class Guidance(PiiVault):
    """The service's configuration and keys, built once per app."""

    settings: GuidanceSettings

    @classmethod
    def from_settings(cls, settings: GuidanceSettings) -> Guidance:
        return cls(settings=settings, cipher=settings.cipher(), hasher=settings.hasher())


async def town_or_422(session: AsyncSession, town_code: str, field: str = "town_code") -> Town:
    town = await session.get(Town, town_code)
    if town is None:
        raise invalid(field, "is not a 街镇 or other unit of Shanghai (see GET /v1/divisions)")
    return town


def acts_for_city(caller: Identity) -> bool:
    """The city's bureaus act and read city-wide. The admin client does not: it administers clients
    and acts for no bureau or district (separation of duties), whatever scopes it holds."""
    return caller.kind == ClientKind.bureau


def writes_guidance(caller: Identity) -> bool:
    """`guidance:write` held by a station's, district's or bureau's client; never a parent's account
    (the admin client never holds it: `Identity.has_scope`)."""
    return caller.kind != ClientKind.parent and caller.has_scope(WRITE_SCOPE)


def check_area(caller: Identity, district_code: str) -> None:
    """A district client writes only in its own district; the city's bureaus anywhere."""
    if acts_for_city(caller):
        return
    if caller.kind == ClientKind.district and caller.district_code == district_code:
        return
    raise Forbidden(tr("You may not act for district {district_code}.", district_code=district_code))


# --- who sees which family -----------------------------------------------------------------------


def is_parent(caller: Identity) -> bool:
    return caller.kind == ClientKind.parent


async def linked_family_id(session: AsyncSession, caller: Identity) -> str | None:
    """The family guidance linked to this parent account (never the token's own `family_id`)."""
    if not is_parent(caller):
        return None
    return (
        await session.execute(select(FamilyLink.family_id).where(FamilyLink.parent_id == caller.client_id))
    ).scalar_one_or_none()


def sees_families(caller: Identity) -> bool:
    # Families are personal data: the admin client's oversight (`guidance:read`) stops short of them.
    if caller.kind == ClientKind.admin:
        return False
    return caller.has_scope(READ_SCOPE) or caller.has_scope(WRITE_SCOPE)


def families_visible_to(caller: Identity) -> ColumnElement[bool]:
    """For lists: bureaus see the city, a district its district, anyone else nothing (a parent
    reads its own family by id)."""
    if not sees_families(caller):
        return false()
    if acts_for_city(caller):
        return true()
    if caller.kind == ClientKind.district and caller.district_code:
        return Family.district_code == caller.district_code
    return false()


async def may_see_family(session: AsyncSession, caller: Identity, family: Family) -> bool:
    if is_parent(caller):
        return await linked_family_id(session, caller) == family.id
    if not sees_families(caller):
        return False
    if acts_for_city(caller):
        return True
    return caller.kind == ClientKind.district and caller.district_code == family.district_code


def reveals_pii(caller: Identity, purpose: str | None) -> bool:
    """Unmasked only for holders of `guidance:pii` who say why (X-Purpose)."""
    return may_unmask(caller, purpose, scope=PII_SCOPE)


def audit_pii_read(session: AsyncSession, **read: Any) -> None:
    record_unmasked_read(session, PiiAccess, **read)
