"""Quality (T22): assessments by method, the current grade, demonstration facilities (示范)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.errors import StatusChangeNotAllowed
from services.registry.events import AssessmentFacts, AssessmentRecorded
from services.registry.models import Assessment, CreditEntry, Facility
from services.registry.schemas import AssessmentCreate, AssessmentMethod, Demonstration, FacilityStatus
from services.registry.service.facilities import facts
from shared.errors import Forbidden
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset


def _is_edu(caller: Identity) -> bool:
    # EDU's own clients only: the admin client acts for no bureau, whatever scopes it holds.
    return caller.is_bureau("EDU")


def check_may_assess(caller: Identity, facility: Facility, method: AssessmentMethod) -> None:
    """Self-assessment by the facility's own operator; peer review organised by its district or EDU;
    commissioned (third-party) assessments recorded by EDU."""
    if method == AssessmentMethod.self_:
        allowed = caller.kind == ClientKind.operator or _is_edu(caller)
    elif method == AssessmentMethod.peer:
        allowed = _is_edu(caller) or (
            caller.kind == ClientKind.district and caller.district_code == facility.district_code
        )
    else:
        allowed = _is_edu(caller)
    if not allowed:
        raise Forbidden(
            tr(
                "A {value} assessment is not recorded by a {caller_kind_value} client.",
                value=method.value,
                caller_kind_value=caller.kind.value,
            )
        )


async def record_assessment(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: AssessmentCreate
) -> Assessment:
    check_may_assess(caller, facility, data.method)
    if facility.status in (FacilityStatus.submitted, FacilityStatus.rejected):
        raise StatusChangeNotAllowed("Only licensed facilities are assessed.")
    now = datetime.now(UTC)
    assessment = Assessment(
        id=str(uuid.uuid4()),
        facility_id=facility.id,
        method=data.method.value,
        scores=data.scores,
        grade=data.grade,
        assessed_on=data.assessed_on,
        assessor=data.assessor,
        recorded_by=caller.client_id,
        recorded_at=now,
    )
    session.add(assessment)
    await session.flush()
    if data.method == AssessmentMethod.commissioned:
        facility.grade = await current_grade(session=session, facility_id=facility.id)
    facility.version += 1
    facility.updated_at = now
    await emit(
        session,
        AssessmentRecorded(
            **facts(facility),
            assessment=AssessmentFacts(
                id=assessment.id,
                method=assessment.method,
                grade=assessment.grade,
                assessed_on=str(data.assessed_on),
            ),
        ),
    )
    return assessment


async def current_grade(*, session: AsyncSession, facility_id: str) -> str | None:
    """The grade of the latest commissioned assessment (by date assessed, then recorded)."""
    latest = await session.execute(
        select(Assessment.grade)
        .where(
            Assessment.facility_id == facility_id, Assessment.method == AssessmentMethod.commissioned.value
        )
        .order_by(Assessment.assessed_on.desc(), Assessment.recorded_at.desc())
        .limit(1)
    )
    return latest.scalar_one_or_none()


async def assessments_of(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[Assessment], str | None]:
    """Newest first."""
    query = keyset(
        select(Assessment).where(Assessment.facility_id == facility.id),
        [Assessment.assessed_on, Assessment.recorded_at, Assessment.id],
        page,
        descending=True,
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda a: [a.assessed_on, a.recorded_at, a.id])


async def designate(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: Demonstration
) -> Facility:
    """EDU designates (or withdraws) a demonstration facility; it is a public, dated credit entry."""
    if not _is_edu(caller):
        raise Forbidden("Demonstration facilities are designated by EDU.")
    if facility.status != FacilityStatus.approved:
        raise StatusChangeNotAllowed("Only an approved facility can be a demonstration facility.")
    now = datetime.now(UTC)
    facility.is_demonstration = data.designated
    facility.version += 1
    facility.updated_at = now
    session.add(
        CreditEntry(
            id=str(uuid.uuid4()),
            facility_id=facility.id,
            polarity="positive" if data.designated else "negative",
            category="demonstration" if data.designated else "demonstration_withdrawn",
            title="示范性托育机构 Designated a demonstration facility"
            if data.designated
            else "示范性托育机构资格撤销 Demonstration status withdrawn",
            detail=data.reason,
            occurred_on=now.date(),
            written_by=caller.client_id,
            recorded_at=now,
        )
    )
    await session.flush()
    return facility
