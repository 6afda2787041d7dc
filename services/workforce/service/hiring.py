"""Employment: hiring (with every check in one transaction), ending, lists. A hire opens a
background check with POLICE (T12) unless one is on file: until it is clear the employment is
provisional, and does not count toward the staffing ratios."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.config import HEALTH_CERTIFICATE
from services.workforce.errors import (
    AlreadyEmployed,
    BackgroundCheckFlagged,
    BannedPerson,
    EmploymentEnded,
    EmploymentNotFound,
    FacilityNotApproved,
    HealthCertificateMissing,
    PractitionerNotFound,
)
from services.workforce.events import EmploymentEnded as EmploymentEndedEvent
from services.workforce.events import EmploymentStarted, HireBlocked
from services.workforce.models import (
    BackgroundCheck,
    Ban,
    Certificate,
    Employment,
    FacilityProjection,
    HireAttempt,
    Practitioner,
)
from services.workforce.schemas import (
    EmploymentCreate,
    EmploymentEnd,
    EmploymentRead,
)
from services.workforce.service import staffing
from services.workforce.service.background_checks import open_check
from services.workforce.service.common import (
    ACTIVE,
    ENDED,
    Workforce,
    get_visible_facility,
    lock_person,
    may_see,
    may_see_practitioner,
)
from shared.clock import as_utc, new_id, shanghai_today, utcnow
from shared.errors import CradleError, FieldError, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import Page, PageParams, make_page


@dataclass(frozen=True)
class HireRefused:
    """A hire refused for who the person is. Unlike other errors it is not rolled back: the attempt
    and its `hire.blocked` event are committed, and the caller gets `problem` (409)."""

    problem: CradleError


async def hire(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, data: EmploymentCreate
) -> Employment | HireRefused:
    facility = await get_visible_facility(session=session, caller=caller, facility_id=data.facility_id)
    if facility.status != "approved":
        raise FacilityNotApproved(
            f"Facility {facility.facility_id} is {facility.status}; only approved facilities can hire."
        )
    # Only someone the caller may see: registered by it (by ID number, so with the person's
    # consent) or employed at one of its facilities now or before. Anyone else is a 404, as if
    # unknown, so an id learnt elsewhere neither hires nor confirms that the person exists.
    practitioner = await session.get(Practitioner, data.practitioner_id)
    if practitioner is None or not await may_see_practitioner(
        session=session, caller=caller, practitioner=practitioner
    ):
        raise PractitionerNotFound(
            f"No practitioner {data.practitioner_id} that you may see; register the person by ID number."
        )
    # From here on no ban for this person can commit until this transaction ends (and vice versa).
    await lock_person(session, practitioner.id_hash)
    ban_ids = list(
        (
            await session.execute(
                select(Ban.id)
                .where(Ban.id_hash == practitioner.id_hash, Ban.status == "active")
                .order_by(Ban.id)
            )
        ).scalars()
    )
    if ban_ids:
        await _record_blocked(
            session, caller=caller, practitioner=practitioner, facility=facility, data=data, reason="ban"
        )
        return HireRefused(
            BannedPerson(
                "This person is under a lifetime ban from childcare work (终身禁入) and cannot be hired.",
                ban_ids=ban_ids,
            )
        )
    flagged = (
        await session.execute(
            select(BackgroundCheck.id).where(
                BackgroundCheck.practitioner_id == practitioner.id, BackgroundCheck.status == "flagged"
            )
        )
    ).first()
    if flagged is not None:
        await _record_blocked(
            session,
            caller=caller,
            practitioner=practitioner,
            facility=facility,
            data=data,
            reason="background_check",
        )
        return HireRefused(
            BackgroundCheckFlagged(
                "A background check (资格审查) of this person was flagged and is not resolved.",
                background_check_id=flagged[0],
            )
        )
    await _require_certificate(session, workforce=workforce, practitioner=practitioner, data=data)
    health_pending = await _require_health_certificate(
        session, workforce=workforce, practitioner=practitioner, data=data
    )
    if data.social_insurance_since is not None and not data.social_insurance_paid:
        raise invalid("social_insurance_since", "is only given when social insurance is paid")
    duplicate = await session.execute(
        select(Employment.id).where(
            Employment.practitioner_id == practitioner.id,
            Employment.facility_id == facility.facility_id,
            Employment.role == data.role.value,
            Employment.status == ACTIVE,
        )
    )
    if (existing := duplicate.scalar_one_or_none()) is not None:
        raise AlreadyEmployed(
            f"This person already works here in this role (employment {existing}).", employment_id=existing
        )
    now = utcnow()
    on_file = await _check_on_file(session, workforce=workforce, practitioner_id=practitioner.id, now=now)
    employment = Employment(
        id=new_id(),
        practitioner_id=practitioner.id,
        facility_id=facility.facility_id,
        district_code=facility.district_code,
        role=data.role.value,
        age_class=data.age_class.value if data.age_class else None,
        contract_type=data.contract_type.value,
        social_insurance_paid=data.social_insurance_paid,
        social_insurance_since=data.social_insurance_since,
        start_date=data.start_date,
        status=ACTIVE,
        standing="cleared"
        if on_file is not None and on_file.status != "pending" and not health_pending
        else "provisional",
        background_check_id=on_file.id if on_file is not None else None,
        health_certificate_pending=health_pending,
        created_by=caller.client_id,
        created_at=now,
    )
    session.add(employment)
    await session.flush()
    if on_file is None:
        check = await open_check(
            session,
            practitioner_id=practitioner.id,
            reason="hire",
            requested_by=caller.client_id,
            employment=employment,
            now=now,
        )
        employment.background_check_id = check.id
    await emit(
        session,
        EmploymentStarted(
            employment_id=employment.id,
            practitioner_id=practitioner.id,
            facility_id=facility.facility_id,
            district_code=facility.district_code,
            role=employment.role,
            start_date=employment.start_date,
            contract_type=employment.contract_type,
            social_insurance_paid=employment.social_insurance_paid,
            standing=employment.standing,  # type: ignore[arg-type]  # provisional | cleared, set above
        ),
    )
    await staffing.announce(session, [facility.facility_id])
    return employment


async def _check_on_file(
    session: AsyncSession, *, workforce: Workforce, practitioner_id: str, now: datetime
) -> BackgroundCheck | None:
    """The check a hire may rely on: the latest one still pending (the employer asked before
    hiring, or the annual re-check is under way), else a clear (or resolved) answer within the
    re-check period. None: the hire opens its own."""
    pending = (
        await session.execute(
            select(BackgroundCheck)
            .where(BackgroundCheck.practitioner_id == practitioner_id, BackgroundCheck.status == "pending")
            .order_by(BackgroundCheck.requested_at.desc(), BackgroundCheck.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    if pending is not None:
        return pending
    since = now - timedelta(days=workforce.settings.recheck_every_days)
    answered = (
        await session.execute(
            select(BackgroundCheck)
            .where(
                BackgroundCheck.practitioner_id == practitioner_id,
                BackgroundCheck.status.in_(("clear", "resolved")),
            )
            .order_by(BackgroundCheck.answered_at.desc(), BackgroundCheck.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    answered_at = answered.resolved_at or answered.answered_at if answered is not None else None
    return answered if answered_at is not None and as_utc(answered_at) >= since else None


async def _require_health_certificate(
    session: AsyncSession, *, workforce: Workforce, practitioner: Practitioner, data: EmploymentCreate
) -> bool:
    """健康合格证明, every role: valid on the first day of work (or today, if that is past). Without
    one the hire is refused, or, where the deployment allows it, provisional until one is recorded
    (returns True)."""
    on = max(data.start_date, shanghai_today())
    if await holds_valid_health_certificate(session, practitioner_id=practitioner.id, on=on):
        return False
    if workforce.settings.provisional_hire_without_health_certificate:
        return True
    raise HealthCertificateMissing(
        tr(
            "No health certificate (健康合格证明, type {type}) valid on {on}: record one before hiring.",
            type=HEALTH_CERTIFICATE,
            on=on.isoformat(),
        ),
        errors=[FieldError(field="practitioner_id", message="holds no valid health certificate")],
        certificate_type=HEALTH_CERTIFICATE,
    )


async def holds_valid_health_certificate(session: AsyncSession, *, practitioner_id: str, on: date) -> bool:
    valid = await session.execute(
        select(Certificate.id)
        .where(
            Certificate.practitioner_id == practitioner_id,
            Certificate.type == HEALTH_CERTIFICATE,
            Certificate.issued_on <= on,
            Certificate.expires_on >= on,
        )
        .limit(1)
    )
    return valid.first() is not None


async def _record_blocked(
    session: AsyncSession,
    *,
    caller: Identity,
    practitioner: Practitioner,
    facility: FacilityProjection,
    data: EmploymentCreate,
    reason: str,
) -> None:
    now = utcnow()
    session.add(
        HireAttempt(
            id=new_id(),
            practitioner_id=practitioner.id,
            facility_id=facility.facility_id,
            district_code=facility.district_code,
            role=data.role.value,
            reason=reason,
            client_id=caller.client_id,
            attempted_at=now,
        )
    )
    await emit(
        session,
        HireBlocked(
            facility_id=facility.facility_id,
            district_code=facility.district_code,
            practitioner_id=practitioner.id,
            reason=reason,
            blocked_at=now,
        ),
    )


async def _require_certificate(
    session: AsyncSession, *, workforce: Workforce, practitioner: Practitioner, data: EmploymentCreate
) -> None:
    accepted = workforce.settings.role_certificates.get(data.role.value)
    if not accepted:
        return
    # Valid on the first day of work, or today if that is already past.
    on = max(data.start_date, shanghai_today())
    valid = await session.execute(
        select(Certificate.id).where(
            Certificate.practitioner_id == practitioner.id,
            Certificate.type.in_(accepted),
            Certificate.issued_on <= on,
            Certificate.expires_on >= on,
        )
    )
    if valid.first() is None:
        raise invalid(
            "role",
            f"{data.role.value} needs a certificate ({' or '.join(accepted)}) valid on {on.isoformat()}; "
            "the person holds none (持证上岗)",
        )


async def get_visible_employment(
    *, session: AsyncSession, caller: Identity, employment_id: str
) -> Employment:
    employment = await session.get(Employment, employment_id)
    facility = await session.get(FacilityProjection, employment.facility_id) if employment else None
    if employment is None or facility is None or not may_see(caller, facility):
        raise EmploymentNotFound(
            tr(
                "No employment {employment_id} that you may see.",
                employment_id=employment_id,
            )
        )
    return employment


async def end_employment(
    *, session: AsyncSession, caller: Identity, employment: Employment, data: EmploymentEnd
) -> Employment:
    if employment.status != ACTIVE:
        raise EmploymentEnded(
            tr(
                "Employment {employment_id} already ended on {end_date}.",
                employment_id=employment.id,
                end_date=employment.end_date,
            )
        )
    if data.end_date < employment.start_date:
        raise invalid("end_date", f"is before the start date {employment.start_date.isoformat()}")
    close(employment, end_date=data.end_date, reason=data.reason.value, by=caller.client_id, note=data.note)
    await emit(session, ended_event(employment))
    await staffing.announce(session, [employment.facility_id])
    return employment


def close(employment: Employment, *, end_date: date, reason: str, by: str, note: str | None = None) -> None:
    employment.status = ENDED
    employment.end_date = max(end_date, employment.start_date)
    employment.end_reason = reason
    employment.end_note = note
    employment.ended_at = utcnow()
    employment.ended_by = by


def ended_event(employment: Employment) -> EmploymentEndedEvent:
    assert employment.end_date is not None and employment.end_reason is not None
    return EmploymentEndedEvent(
        employment_id=employment.id,
        practitioner_id=employment.practitioner_id,
        facility_id=employment.facility_id,
        district_code=employment.district_code,
        role=employment.role,
        end_date=employment.end_date,
        reason=employment.end_reason,
    )


def employment_read(employment: Employment, practitioner_name: str) -> EmploymentRead:
    return EmploymentRead(
        id=employment.id,
        practitioner_id=employment.practitioner_id,
        practitioner_name=practitioner_name,
        facility_id=employment.facility_id,
        district_code=employment.district_code,
        role=employment.role,
        age_class=employment.age_class,
        contract_type=employment.contract_type,
        social_insurance_paid=employment.social_insurance_paid,
        start_date=employment.start_date,
        end_date=employment.end_date,
        end_reason=employment.end_reason,
        status=employment.status,
        standing=employment.standing,
        background_check_id=employment.background_check_id,
        health_certificate_pending=employment.health_certificate_pending,
        health_flagged_on=employment.health_flagged_on,
        suspended_at=employment.suspended_at,
        social_insurance_since=employment.social_insurance_since,
        version=employment.version,
    )


async def read_employment(*, session: AsyncSession, employment: Employment) -> EmploymentRead:
    name = (
        await session.execute(select(Practitioner.name).where(Practitioner.id == employment.practitioner_id))
    ).scalar_one()
    return employment_read(employment, name)


async def list_employments(
    *,
    session: AsyncSession,
    facility: FacilityProjection,
    status: str | None,
    social_insurance_paid: bool | None,
    page: PageParams,
) -> Page[EmploymentRead]:
    """A facility's staff; `social_insurance_paid=false` lists who lacks 社保 (T8)."""
    query = (
        select(Employment, Practitioner.name)
        .join(Practitioner, Practitioner.id == Employment.practitioner_id)
        .where(Employment.facility_id == facility.facility_id)
        .order_by(Employment.id)
        .limit(page.limit + 1)
    )
    if status is not None:
        query = query.where(Employment.status == status)
    if social_insurance_paid is not None:
        query = query.where(Employment.social_insurance_paid == social_insurance_paid)
    if page.after:
        query = query.where(Employment.id > str(page.after[0]))
    rows = [employment_read(e, name) for e, name in (await session.execute(query)).all()]
    return make_page(rows, limit=page.limit, position_of=lambda r: [r.id])
