"""Change requests: a licensed facility's licensed facts (capacity, classes, address, coordinates,
街镇 and district, the inclusive flag) change only when the departments that license facilities
(settings.required_departments) approve; fees above the inclusive cap wait for EDU the same way
(service/fees.py). Until then the facility's public and coverage facts stay as they were. Every
review is kept: a department's latest decision counts, any rejection closes the request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.errors import (
    ChangeRequestClosed,
    ChangeRequestNotFound,
    NotLicensed,
    NotYourDepartment,
)
from services.registry.events import FacilityUpdated
from services.registry.models import ChangeRequest, ChangeRequestReview, Facility, FeeSchedule
from services.registry.schemas import (
    AGE_CLASSES,
    Capacity,
    Classes,
    FacilityStatus,
    FacilityUpdate,
    ReviewCreate,
)
from services.registry.schemas.applications import ReviewDecision
from services.registry.schemas.fees import (
    ChangeRequestKind,
    ChangeRequestRead,
    ChangeRequestReviewRead,
    ChangeRequestStatus,
    FeeScheduleStatus,
    LicensedFactsChange,
)
from services.registry.service import fees
from services.registry.service.facilities import (
    capacity_of,
    check_capacity,
    enrolment_of,
    facts,
    record_version,
    town_or_422,
)
from shared.contracts.registry import ChangeRequestDecided, ChangeRequestFacts, ChangeRequestOpened
from shared.errors import FieldError, InvalidInput
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset

LICENSED_FACTS = ("capacity", "classes", "address", "lat", "lon", "town_code", "inclusive")


def is_licensed(facility: Facility) -> bool:
    return facility.license_no is not None and facility.status in (
        FacilityStatus.approved,
        FacilityStatus.suspended,
    )


def split_edit(data: FacilityUpdate) -> tuple[FacilityUpdate | None, LicensedFactsChange | None]:
    """A PATCH of a licensed facility: the fields it may change at once, and the licensed facts."""
    given = data.model_dump(exclude_unset=True)
    licensed = {k: v for k, v in given.items() if k in LICENSED_FACTS}
    direct = {k: v for k, v in given.items() if k not in LICENSED_FACTS}
    return (
        FacilityUpdate.model_validate(direct) if direct else None,
        LicensedFactsChange.model_validate(licensed) if licensed else None,
    )


def _facts_of(request: ChangeRequest) -> ChangeRequestFacts:
    fields = sorted(request.changes) if request.kind == ChangeRequestKind.facts else ["fees"]
    return ChangeRequestFacts(
        id=request.id,
        kind=request.kind,  # type: ignore[arg-type]
        status=request.status,  # type: ignore[arg-type]
        fields=fields,
        departments=request.departments,
    )


async def open_request(
    session: AsyncSession,
    *,
    caller: Identity,
    facility: Facility,
    kind: ChangeRequestKind,
    changes: dict[str, Any],
    departments: list[str],
    reason: str,
    now: datetime,
    fee_schedule_id: str | None = None,
) -> ChangeRequest:
    request = ChangeRequest(
        id=str(uuid.uuid4()),
        facility_id=facility.id,
        kind=kind.value,
        changes=changes,
        fee_schedule_id=fee_schedule_id,
        departments=list(departments),
        status=ChangeRequestStatus.pending.value,
        reason=reason[:2000],
        requested_by=caller.client_id,
        requested_at=now,
    )
    session.add(request)
    facility.version += 1
    facility.updated_at = now
    await session.flush()
    await emit(session, ChangeRequestOpened(**facts(facility), change_request=_facts_of(request)))
    return request


async def supersede_pending(
    session: AsyncSession, facility: Facility, kind: ChangeRequestKind, now: datetime
) -> None:
    """Close the facility's pending requests of this kind (a newer one replaces them)."""
    pending = (
        await session.execute(
            select(ChangeRequest).where(
                ChangeRequest.facility_id == facility.id,
                ChangeRequest.kind == kind.value,
                ChangeRequest.status == ChangeRequestStatus.pending.value,
            )
        )
    ).scalars()
    for request in pending:
        request.status, request.decided_at = ChangeRequestStatus.superseded.value, now
        if request.fee_schedule_id is not None:
            await session.execute(
                update(FeeSchedule)
                .where(FeeSchedule.id == request.fee_schedule_id)
                .values(status=FeeScheduleStatus.superseded.value)
            )
        await emit(session, ChangeRequestDecided(**facts(facility), change_request=_facts_of(request)))
    await session.flush()


async def _validate_facts(
    session: AsyncSession, facility: Facility, changes: dict[str, Any], settings: RegistrySettings
) -> Classes | None:
    """The checks an edit of these facts gets (class sizes, enrolment, the 街镇): when the request
    is made, and again when it applies (enrolment may have grown meanwhile). The classes to keep."""
    if "town_code" in changes:
        await town_or_422(session, changes["town_code"])
    if "capacity" not in changes and "classes" not in changes:
        return None
    capacity = (
        Capacity.model_validate(changes["capacity"]) if "capacity" in changes else capacity_of(facility)
    )
    current = Classes(
        infant=facility.classes_infant, toddler=facility.classes_toddler, preschool=facility.classes_preschool
    )
    declared = Classes.model_validate(changes["classes"]) if "classes" in changes else current
    classes = check_capacity(
        capacity, declared if any(getattr(declared, a) for a in AGE_CLASSES) else None, settings
    )
    enrolled = enrolment_of(facility)
    over = [a for a in AGE_CLASSES if getattr(enrolled, a) > getattr(capacity, a)]
    if over:
        raise InvalidInput(
            tr("Capacity would fall below the children enrolled."),
            errors=[FieldError(field=f"capacity.{a}", message="below current enrolment") for a in over],
        )
    return classes


async def request_facts(
    *,
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    data: LicensedFactsChange,
    settings: RegistrySettings,
) -> ChangeRequest:
    if not is_licensed(facility):
        raise NotLicensed(
            tr("Only a licensed facility's facts change by review; edit this one with PATCH."),
        )
    changes = data.model_dump(mode="json", exclude_unset=True, exclude={"reason"})
    await _validate_facts(session, facility, changes, settings)
    return await open_request(
        session,
        caller=caller,
        facility=facility,
        kind=ChangeRequestKind.facts,
        changes=changes,
        departments=settings.required_departments,
        reason=data.reason,
        now=datetime.now(UTC),
    )


async def _apply_facts(
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    changes: dict[str, Any],
    settings: RegistrySettings,
) -> None:
    classes = await _validate_facts(session, facility, changes, settings)
    if classes is not None:
        capacity = (
            Capacity.model_validate(changes["capacity"]) if "capacity" in changes else capacity_of(facility)
        )
        for a in AGE_CLASSES:
            setattr(facility, f"capacity_{a}", getattr(capacity, a))
            setattr(facility, f"classes_{a}", getattr(classes, a))
    if "town_code" in changes:
        town = await town_or_422(session, changes["town_code"])
        facility.town_code, facility.district_code = town.code, town.district_code
    for field in ("address", "lat", "lon", "inclusive"):
        if field in changes:
            setattr(facility, field, changes[field])
    if "inclusive" in changes:
        await fees.inclusive_changed(session, facility)
    facility.version += 1
    facility.updated_at = datetime.now(UTC)
    await session.flush()
    await record_version(session=session, facility=facility, caller=caller)
    await emit(session, FacilityUpdated(**facts(facility)))


async def get_request(session: AsyncSession, facility: Facility, request_id: str) -> ChangeRequest:
    request = await session.get(ChangeRequest, request_id)
    if request is None or request.facility_id != facility.id:
        raise ChangeRequestNotFound(
            tr("No change request {request_id} of this facility.", request_id=request_id)
        )
    return request


async def reviews_of(session: AsyncSession, request_ids: list[str]) -> dict[str, list[ChangeRequestReview]]:
    found: dict[str, list[ChangeRequestReview]] = {i: [] for i in request_ids}
    if request_ids:
        rows = await session.execute(
            select(ChangeRequestReview)
            .where(ChangeRequestReview.change_request_id.in_(request_ids))
            .order_by(ChangeRequestReview.reviewed_at, ChangeRequestReview.id)
        )
        for review in rows.scalars():
            found[review.change_request_id].append(review)
    return found


def latest_decisions(reviews: list[Any]) -> dict[str, str]:
    """Each department's latest decision (reviews oldest first)."""
    return {r.department: r.decision for r in reviews}


def awaiting(departments: list[str], reviews: list[Any]) -> list[str]:
    latest = latest_decisions(reviews)
    return [d for d in departments if latest.get(d) != ReviewDecision.approve]


def to_read(request: ChangeRequest, reviews: list[ChangeRequestReview]) -> ChangeRequestRead:
    return ChangeRequestRead(
        id=request.id,
        facility_id=request.facility_id,
        kind=ChangeRequestKind(request.kind),
        changes=request.changes,
        fee_schedule_id=request.fee_schedule_id,
        status=ChangeRequestStatus(request.status),
        reason=request.reason,
        departments=request.departments,
        awaiting=awaiting(request.departments, reviews)
        if request.status == ChangeRequestStatus.pending
        else [],
        reviews=[ChangeRequestReviewRead.model_validate(r, from_attributes=True) for r in reviews],
        requested_at=request.requested_at,
        decided_at=request.decided_at,
    )


async def review(
    *,
    session: AsyncSession,
    caller: Identity,
    facility: Facility,
    request: ChangeRequest,
    data: ReviewCreate,
    settings: RegistrySettings,
) -> ChangeRequest:
    """A department's decision, kept beside its earlier ones. Every department approving applies the
    change; a rejection closes the request."""
    if (
        caller.kind != ClientKind.bureau
        or caller.bureau != data.department
        or data.department not in request.departments
    ):
        raise NotYourDepartment(
            tr(
                "Only the departments this request names review it ({departments}), each by its own clients.",
                departments=", ".join(request.departments),
            )
        )
    if request.status != ChangeRequestStatus.pending:
        raise ChangeRequestClosed(
            tr("The change request was already decided: it is {status}.", status=request.status)
        )
    now = datetime.now(UTC)
    session.add(
        ChangeRequestReview(
            id=str(uuid.uuid4()),
            change_request_id=request.id,
            department=data.department,
            decision=data.decision.value,
            note=data.note,
            reviewer_client_id=caller.client_id,
            reviewed_at=now,
        )
    )
    await session.flush()
    reviews = (await reviews_of(session, [request.id]))[request.id]
    latest = latest_decisions(reviews)
    if ReviewDecision.reject in latest.values():
        approved = False
    elif not awaiting(request.departments, reviews):
        approved = True
    else:
        return request
    if request.kind == ChangeRequestKind.facts:
        if approved:
            await _apply_facts(session, caller, facility, request.changes, settings)
    else:
        await fees.settle(session, facility, request, approved, now)
    request.status = (ChangeRequestStatus.approved if approved else ChangeRequestStatus.rejected).value
    request.decided_at = now
    facility.version += 1
    facility.updated_at = now
    await session.flush()
    await emit(session, ChangeRequestDecided(**facts(facility), change_request=_facts_of(request)))
    return request


async def list_requests(
    *, session: AsyncSession, facility: Facility, status: ChangeRequestStatus | None, page: PageParams
) -> tuple[list[ChangeRequestRead], str | None]:
    """The facility's change requests, newest first."""
    query = select(ChangeRequest).where(ChangeRequest.facility_id == facility.id)
    if status is not None:
        query = query.where(ChangeRequest.status == status.value)
    query = keyset(query, [ChangeRequest.requested_at, ChangeRequest.id], page, descending=True)
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda r: [r.requested_at, r.id],
    )
    reviews = await reviews_of(session, [r.id for r in rows])
    return [to_read(r, reviews[r.id]) for r in rows], cursor
