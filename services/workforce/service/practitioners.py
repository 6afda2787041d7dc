"""Practitioners (从业人员), their certificates (持证上岗) and grades (岗位分级)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.config import HEALTH_CERTIFICATE
from services.workforce.events import CertificateAdded, CertificateExpired, PractitionerRegistered
from services.workforce.models import Certificate, Employment, GradeChange, Practitioner, PractitionerAccess
from services.workforce.schemas import (
    CertificateCreate,
    CertificateRead,
    GradeCreate,
    GradeRead,
    PiiView,
    PractitionerCreate,
    PractitionerRead,
)
from services.workforce.service import health
from services.workforce.service.common import (
    ID_NUMBER,
    PHONE,
    Workforce,
    audit_pii_read,
    lock_person,
    reveals_pii,
)
from shared.clock import new_id, shanghai_today, utcnow
from shared.errors import Conflict, FieldError, invalid
from shared.events.outbox import emit
from shared.identity import Identity
from shared.pagination import Page, PageParams, cut_page, keyset
from shared.pii import mask


@dataclass(frozen=True)
class Registration:
    practitioner: Practitioner
    created: bool  # False: the ID number found the person's existing record


async def register(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, data: PractitionerCreate
) -> Registration:
    """Register a person by ID number. The person is one record citywide: when they are already on
    record, this finds it and makes it visible to the caller (who holds the ID number, so learns
    nothing it did not know; the record's other employers stay hidden) and changes nothing in it."""
    if data.nationality != "CN" and not data.work_permit_no:
        raise invalid("work_permit_no", "foreign staff need a work permit number")
    id_hash = workforce.hash_id(data.id_number)
    await lock_person(session, id_hash)
    existing = (
        await session.execute(select(Practitioner).where(Practitioner.id_hash == id_hash))
    ).scalar_one_or_none()
    if existing is not None:
        await _grant_access(session, practitioner_id=existing.id, client_id=caller.client_id)
        return Registration(existing, created=False)
    now = utcnow()
    sealed_id = workforce.seal(data.id_number, context=ID_NUMBER)
    sealed_phone = workforce.seal(data.phone, context=PHONE) if data.phone else None
    practitioner = Practitioner(
        id=new_id(),
        id_hash=id_hash,
        id_number_key_id=sealed_id.key_id,
        id_number_encrypted=sealed_id.ciphertext,
        id_number_masked=mask(data.id_number),
        name=data.name,
        phone_key_id=sealed_phone.key_id if sealed_phone else None,
        phone_encrypted=sealed_phone.ciphertext if sealed_phone else None,
        phone_masked=mask(data.phone) if data.phone else None,
        nationality=data.nationality,
        work_permit_no=data.work_permit_no,
        registered_by=caller.client_id,
        created_at=now,
        updated_at=now,
    )
    session.add(practitioner)
    await session.flush()
    await _grant_access(session, practitioner_id=practitioner.id, client_id=caller.client_id)
    await emit(
        session,
        PractitionerRegistered(
            practitioner_id=practitioner.id, nationality=practitioner.nationality, registered_at=now
        ),
    )
    return Registration(practitioner, created=True)


async def _grant_access(session: AsyncSession, *, practitioner_id: str, client_id: str) -> None:
    # Under the person's lock (lock_person), so two registrations by one client cannot both insert.
    held = await session.execute(
        select(PractitionerAccess.id).where(
            PractitionerAccess.practitioner_id == practitioner_id, PractitionerAccess.client_id == client_id
        )
    )
    if held.first() is None:
        session.add(
            PractitionerAccess(
                id=new_id(), practitioner_id=practitioner_id, client_id=client_id, granted_at=utcnow()
            )
        )
        await session.flush()


def to_read(
    practitioner: Practitioner,
    *,
    session: AsyncSession,
    workforce: Workforce,
    caller: Identity,
    purpose: str | None,
    request_id: str | None,
) -> PractitionerRead:
    """Masked, unless the caller holds `workforce:pii` and gave a purpose; then the read is audited
    in the same transaction, so no unmasked answer leaves without its audit row."""
    unmasked = reveals_pii(caller, purpose)
    id_number, phone = practitioner.id_number_masked, practitioner.phone_masked
    if unmasked:
        assert purpose is not None
        id_number = workforce.open(
            practitioner.id_number_key_id, practitioner.id_number_encrypted, context=ID_NUMBER
        )
        if practitioner.phone_encrypted and practitioner.phone_key_id:
            phone = workforce.open(practitioner.phone_key_id, practitioner.phone_encrypted, context=PHONE)
        audit_pii_read(
            session,
            caller=caller,
            record_type="practitioner",
            record_id=practitioner.id,
            fields="id_number,phone",
            purpose=purpose,
            request_id=request_id,
        )
    return PractitionerRead(
        id=practitioner.id,
        name=practitioner.name,
        id_number=id_number,
        phone=phone,
        nationality=practitioner.nationality,
        work_permit_no=practitioner.work_permit_no,
        grade=practitioner.grade,
        pii=PiiView.unmasked if unmasked else PiiView.masked,
        version=practitioner.version,
        created_at=practitioner.created_at,
    )


async def set_grade(
    *, session: AsyncSession, caller: Identity, practitioner: Practitioner, data: GradeCreate
) -> GradeRead:
    now = utcnow()
    change = GradeChange(
        id=new_id(),
        practitioner_id=practitioner.id,
        level=data.level,
        reason=data.reason,
        changed_by=caller.client_id,
        changed_at=now,
    )
    session.add(change)
    practitioner.grade = data.level
    practitioner.version += 1
    practitioner.updated_at = now
    await session.flush()
    return GradeRead(level=change.level, reason=change.reason, changed_by=change.changed_by, changed_at=now)


async def grade_history(
    *, session: AsyncSession, practitioner: Practitioner, page: PageParams
) -> Page[GradeRead]:
    """Oldest change first."""
    query = keyset(
        select(GradeChange).where(GradeChange.practitioner_id == practitioner.id),
        [GradeChange.changed_at, GradeChange.id],
        page,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda g: [g.changed_at, g.id],
    )
    items = [
        GradeRead(level=g.level, reason=g.reason, changed_by=g.changed_by, changed_at=g.changed_at)
        for g in rows
    ]
    return Page[GradeRead](items=items, next_cursor=cursor)


def certificate_read(certificate: Certificate) -> CertificateRead:
    today = shanghai_today()
    return CertificateRead(
        id=certificate.id,
        practitioner_id=certificate.practitioner_id,
        type=certificate.type,
        number=certificate.number,
        issuer=certificate.issuer,
        issued_on=certificate.issued_on,
        expires_on=certificate.expires_on,
        valid_today=certificate.issued_on <= today <= certificate.expires_on,
    )


async def add_certificate(
    *,
    session: AsyncSession,
    workforce: Workforce,
    caller: Identity,
    practitioner: Practitioner,
    data: CertificateCreate,
) -> CertificateRead:
    expires_on = data.expires_on
    if data.type.value == HEALTH_CERTIFICATE:
        # 健康合格证明 is valid a year (a setting): no longer, whatever the form says.
        longest = data.issued_on + timedelta(days=workforce.settings.health_certificate_valid_days)
        if expires_on is None:
            expires_on = longest
        elif expires_on > longest:
            raise invalid(
                "expires_on",
                f"a health certificate is valid {workforce.settings.health_certificate_valid_days} days "
                f"at most: {longest.isoformat()} or earlier",
            )
    elif expires_on is None:
        raise invalid("expires_on", "is required for this certificate type")
    if expires_on <= data.issued_on:
        raise invalid("expires_on", "must be after issued_on")
    duplicate = await session.execute(
        select(Certificate.id).where(
            Certificate.practitioner_id == practitioner.id,
            Certificate.type == data.type.value,
            Certificate.number == data.number,
        )
    )
    if duplicate.first() is not None:
        raise Conflict(
            "This certificate is already recorded for this practitioner.",
            errors=[FieldError(field="number", message="already recorded")],
        )
    certificate = Certificate(
        id=new_id(),
        practitioner_id=practitioner.id,
        type=data.type.value,
        number=data.number,
        issuer=data.issuer,
        issued_on=data.issued_on,
        expires_on=expires_on,
        recorded_by=caller.client_id,
        created_at=utcnow(),
    )
    session.add(certificate)
    await session.flush()
    await emit(
        session,
        CertificateAdded(
            certificate_id=certificate.id,
            practitioner_id=practitioner.id,
            type=certificate.type,
            issued_on=certificate.issued_on,
            expires_on=certificate.expires_on,
        ),
    )
    await health.certificate_recorded(session=session, certificate=certificate, by=caller.client_id)
    return certificate_read(certificate)


async def list_certificates(
    *, session: AsyncSession, practitioner: Practitioner, page: PageParams
) -> Page[CertificateRead]:
    """The latest expiry first."""
    query = keyset(
        select(Certificate).where(Certificate.practitioner_id == practitioner.id),
        [Certificate.expires_on, Certificate.id],
        page,
        descending=True,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda c: [c.expires_on, c.id],
    )
    return Page[CertificateRead](items=[certificate_read(c) for c in rows], next_cursor=cursor)


async def announce_expired_certificates(*, session: AsyncSession, now: datetime) -> int:
    """Publish `certificate.expired` once for each certificate past its date."""
    today = shanghai_today(now)
    expired = (
        (
            await session.execute(
                select(Certificate)
                .where(Certificate.expires_on < today, Certificate.expiry_announced_at.is_(None))
                .order_by(Certificate.expires_on)
                .limit(1000)
            )
        )
        .scalars()
        .all()
    )
    for certificate in expired:
        facilities = (
            await session.execute(
                select(Employment.facility_id).where(
                    Employment.practitioner_id == certificate.practitioner_id, Employment.status == "active"
                )
            )
        ).scalars()
        certificate.expiry_announced_at = now
        await emit(
            session,
            CertificateExpired(
                certificate_id=certificate.id,
                practitioner_id=certificate.practitioner_id,
                type=certificate.type,
                expired_on=certificate.expires_on,
                employed_at_facility_ids=sorted(set(facilities)),
            ),
        )
    return len(expired)
