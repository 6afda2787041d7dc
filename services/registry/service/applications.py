"""Reviews by the required departments, licences, and later status changes (with history)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.errors import ApplicationClosed, NotYourDepartment, StatusChangeNotAllowed
from services.registry.events import (
    FacilityApproved,
    FacilityClosed,
    FacilityReinstated,
    FacilityRejected,
    FacilityReviewed,
    FacilitySuspended,
    ReviewFacts,
)
from services.registry.models import Facility, FacilityReview, FacilityStatusChange, LicenseSequence
from services.registry.schemas import FacilityStatus, ReviewCreate, ReviewDecision, StatusChange, StatusTarget
from services.registry.service.facilities import facts
from shared.errors import Forbidden
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity

# Which status a change may start from, for each target.
ALLOWED_FROM = {
    StatusTarget.suspended: {FacilityStatus.approved},
    StatusTarget.closed: {FacilityStatus.approved, FacilityStatus.suspended},
    StatusTarget.approved: {FacilityStatus.suspended},  # reinstatement
}


async def reviews_of(*, session: AsyncSession, facility: Facility) -> list[FacilityReview]:
    rows = await session.execute(
        select(FacilityReview)
        .where(FacilityReview.facility_id == facility.id)
        .order_by(FacilityReview.department, FacilityReview.reviewed_at, FacilityReview.id)
    )
    return list(rows.scalars().all())


def latest_reviews(reviews: list[FacilityReview]) -> list[FacilityReview]:
    """Each department's latest review (reviews in their order of time per department)."""
    return list({r.department: r for r in reviews}.values())


def awaiting(reviews: list[FacilityReview], settings: RegistrySettings) -> list[str]:
    approved = {r.department for r in latest_reviews(reviews) if r.decision == ReviewDecision.approve}
    return [d for d in settings.required_departments if d not in approved]


async def review(
    *,
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    data: ReviewCreate,
    settings: RegistrySettings,
) -> Facility:
    """A department's decision. While the application is open a department may change its mind (its
    earlier reviews stay on record, its latest counts); every required approval → approved with a
    licence; any rejection → rejected."""
    if caller.kind != ClientKind.bureau or caller.bureau != data.department:
        raise NotYourDepartment(
            tr(
                "Only {department}'s own clients review for {department}.",
                department=data.department,
            )
        )
    if facility.status != FacilityStatus.submitted:
        raise ApplicationClosed(
            tr(
                "The application was already decided: it is {status}.",
                status=facility.status,
            )
        )
    now = datetime.now(UTC)
    # A department that reviews again adds a row: its latest decision counts, the earlier stays.
    session.add(
        FacilityReview(
            id=str(uuid.uuid4()),
            facility_id=facility.id,
            department=data.department,
            decision=data.decision.value,
            note=data.note,
            reviewer_client_id=caller.client_id,
            reviewed_at=now,
        )
    )
    await session.flush()
    facility.version += 1
    facility.updated_at = now
    review_facts = ReviewFacts(department=data.department, decision=data.decision.value, note=data.note)
    await emit(session, FacilityReviewed(**facts(facility), review=review_facts))

    reviews = await reviews_of(session=session, facility=facility)
    rejections = [r for r in latest_reviews(reviews) if r.decision == ReviewDecision.reject]
    if rejections:
        reasons = [f"{r.department}: {r.note}" for r in rejections]
        facility.rejection_reasons = reasons
        await _change_status(session, facility, FacilityStatus.rejected, "; ".join(reasons), caller, now)
        await emit(session, FacilityRejected(**facts(facility), reasons=reasons))
    elif not awaiting(reviews, settings):
        facility.license_no = await _issue_license_no(session, facility.district_code, now.year)
        facility.approved_at = now
        await _change_status(
            session, facility, FacilityStatus.approved, "every required department approved", caller, now
        )
        await emit(session, FacilityApproved(**facts(facility), approved_at=now))
    await session.flush()
    return facility


async def _issue_license_no(session: AsyncSession, district_code: str, year: int) -> str:
    """沪托<district>-<year>-<sequence>: readable, unique, and in order of approval per district."""
    sequence = await session.get(LicenseSequence, (district_code, year), with_for_update=True)
    if sequence is None:
        session.add(LicenseSequence(district_code=district_code, year=year, last_number=1))
        number = 1
    else:
        # An UPDATE that reads its own increment: concurrent approvals never share a number.
        await session.execute(
            update(LicenseSequence)
            .where(LicenseSequence.district_code == district_code, LicenseSequence.year == year)
            .values(last_number=LicenseSequence.last_number + 1)
        )
        await session.refresh(sequence)
        number = sequence.last_number
    await session.flush()
    return f"沪托{district_code}-{year}-{number:05d}"


async def _change_status(
    session: AsyncSession,
    facility: Facility,
    to: FacilityStatus,
    reason: str,
    caller: Identity,
    now: datetime,
) -> None:
    session.add(
        FacilityStatusChange(
            id=str(uuid.uuid4()),
            facility_id=facility.id,
            from_status=facility.status,
            to_status=to.value,
            reason=reason[:2000],
            changed_by=caller.client_id,
            changed_at=now,
        )
    )
    facility.status = to.value
    facility.version += 1
    facility.updated_at = now


def may_change_status(caller: Identity, facility: Facility) -> bool:
    """The education bureau citywide, a district for its own facilities. Not the admin client: it
    administers clients and acts for no bureau or district (separation of duties)."""
    if caller.kind == ClientKind.bureau:
        return caller.is_bureau("EDU")
    return caller.kind == ClientKind.district and caller.district_code == facility.district_code


async def change_status(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: StatusChange
) -> Facility:
    if not may_change_status(caller, facility):
        raise Forbidden("Suspending, closing or reinstating is for EDU or the facility's district.")
    if facility.status not in ALLOWED_FROM[data.status]:
        raise StatusChangeNotAllowed(
            tr(
                "A {status} facility cannot become {data_status_value}.",
                status=facility.status,
                data_status_value=data.status.value,
            )
        )
    now = datetime.now(UTC)
    await _change_status(session, facility, FacilityStatus(data.status.value), data.reason, caller, now)
    event = {
        StatusTarget.suspended: FacilitySuspended,
        StatusTarget.closed: FacilityClosed,
        StatusTarget.approved: FacilityReinstated,
    }[data.status]
    await emit(session, event(**facts(facility), reason=data.reason))
    await session.flush()
    return facility
