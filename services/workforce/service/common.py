"""What every part of the workforce service shares: its personal-data keys, Shanghai's calendar,
the per-person lock, and who may see which facility and practitioner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.config import WorkforceSettings
from services.workforce.errors import FacilityNotFound, PractitionerNotFound
from services.workforce.models import (
    Employment,
    FacilityProjection,
    Person,
    PiiAccess,
    Practitioner,
    PractitionerAccess,
)

# Still importable from here for cradle/seed (the clock itself is shared/clock.py).
from shared.clock import SHANGHAI as SHANGHAI
from shared.clock import as_utc as as_utc
from shared.clock import shanghai_today as shanghai_today
from shared.clock import utcnow
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pii import PiiVault
from shared.pii_audit import may_unmask, record_unmasked_read

# AES-GCM associated data: a ciphertext only decrypts in the kind of field it was made for.
ID_NUMBER = "national_id"
PHONE = "phone"
PII_SCOPE = "workforce:pii"


WORKFORCE_SESSION_KEY = "cradle_workforce"
ACTIVE, ENDED = "active", "ended"  # employment statuses


@dataclass(frozen=True)
class Workforce(PiiVault):
    """The service's configuration and keys, built once per app (and in every session's `info` under
    WORKFORCE_SESSION_KEY, for code that only has a session, such as event handlers)."""

    settings: WorkforceSettings

    @classmethod
    def from_settings(cls, settings: WorkforceSettings) -> Workforce:
        return cls(settings=settings, cipher=settings.cipher(), hasher=settings.hasher())


async def lock_person(session: AsyncSession, id_hash: str) -> None:
    """Create the person's row if needed and lock it until the transaction ends. Hiring, banning
    and registering all begin here, so for one person they run one after another: whichever
    commits first, the other sees it. On SQLite this is also the transaction's first write, which
    takes the database's write lock before anything is read."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(Person).values(id_hash=id_hash, created_at=utcnow()).on_conflict_do_nothing()
    )
    await session.execute(select(Person.id_hash).where(Person.id_hash == id_hash).with_for_update())


def may_see(caller: Identity, facility: FacilityProjection) -> bool:
    return caller.may_see_facility(
        facility_id=facility.facility_id,
        district_code=facility.district_code,
        owner_client_id=facility.owner_client_id,
    )


def visible_facilities(caller: Identity) -> ColumnElement[bool]:
    """`may_see_facility` as a SQL condition on facility_projection, for lists."""
    f = FacilityProjection
    if caller.sees_whole_city():
        return true()
    if caller.kind == ClientKind.district and caller.district_code:
        return f.district_code == caller.district_code
    if caller.kind == ClientKind.operator:
        return or_(f.facility_id.in_(caller.facility_ids), f.owner_client_id == caller.client_id)
    return false()


async def get_visible_facility(
    *, session: AsyncSession, caller: Identity, facility_id: str
) -> FacilityProjection:
    """404 both when the facility is unknown and when the caller may not see it."""
    facility = await session.get(FacilityProjection, facility_id)
    if facility is None or not may_see(caller, facility):
        raise FacilityNotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
    return facility


async def may_see_practitioner(
    *, session: AsyncSession, caller: Identity, practitioner: Practitioner
) -> bool:
    """The city's bureaus see everyone; others see whom they registered (first, or by a later
    registration that found the record) or whom a facility they may see employs or employed."""
    if caller.sees_whole_city() or practitioner.registered_by == caller.client_id:
        return True
    registered = await session.execute(
        select(PractitionerAccess.id).where(
            PractitionerAccess.practitioner_id == practitioner.id,
            PractitionerAccess.client_id == caller.client_id,
        )
    )
    if registered.first() is not None:
        return True
    found = await session.execute(
        select(Employment.id)
        .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
        .where(and_(Employment.practitioner_id == practitioner.id, visible_facilities(caller)))
        .limit(1)
    )
    return found.first() is not None


async def get_visible_practitioner(
    *, session: AsyncSession, caller: Identity, practitioner_id: str
) -> Practitioner:
    practitioner = await session.get(Practitioner, practitioner_id)
    if practitioner is None or not await may_see_practitioner(
        session=session, caller=caller, practitioner=practitioner
    ):
        raise PractitionerNotFound(
            tr(
                "No practitioner {practitioner_id} that you may see.",
                practitioner_id=practitioner_id,
            )
        )
    return practitioner


def reveals_pii(caller: Identity, purpose: str | None) -> bool:
    """Unmasked only for holders of `workforce:pii` who say why (X-Purpose)."""
    return may_unmask(caller, purpose, scope=PII_SCOPE)


def audit_pii_read(session: AsyncSession, **read: Any) -> None:
    record_unmasked_read(session, PiiAccess, **read)
