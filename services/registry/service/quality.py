"""Quality (T22): assessments by method (self, peer, commissioned) with a grade per dimension of the
versioned quality framework, the current grade, demonstration facilities (示范)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.errors import FacilityNotFound, StatusChangeNotAllowed
from services.registry.events import AssessmentFacts, AssessmentRecorded, QualityFrameworkPublished
from services.registry.models import Assessment, CreditEntry, Facility, QualityFramework
from services.registry.schemas import (
    AssessmentCreate,
    AssessmentMethod,
    Demonstration,
    FacilityStatus,
    QualityFrameworkCreate,
)
from services.registry.service.facilities import facts, get_visible_facility
from shared.errors import FieldError, Forbidden, InvalidInput, NotFound
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset


def _is_edu(caller: Identity) -> bool:
    # EDU's own clients only: the admin client acts for no bureau, whatever scopes it holds.
    return caller.is_bureau("EDU")


def _owns(caller: Identity, facility: Facility) -> bool:
    return caller.kind == ClientKind.operator and (
        facility.owner_client_id == caller.client_id or facility.id in (caller.facility_ids or ())
    )


async def facility_to_assess(
    *, session: AsyncSession, caller: Identity, facility_id: str, method: AssessmentMethod
) -> Facility:
    """The facility, locked: one the caller may see, or for a peer review by another facility's
    operator any licensed facility (licensed facilities are public anyway); else 404."""
    try:
        return await get_visible_facility(
            session=session, caller=caller, facility_id=facility_id, for_update=True
        )
    except FacilityNotFound:
        if method != AssessmentMethod.peer or caller.kind != ClientKind.operator:
            raise
        facility = await session.get(Facility, facility_id, with_for_update=True)
        if facility is None or facility.status != FacilityStatus.approved:
            raise
        return facility


def check_may_assess(caller: Identity, facility: Facility, method: AssessmentMethod) -> None:
    """Self-assessment by the facility's own operator (or EDU); peer review by another facility's
    operator, the facility's district or EDU; commissioned (third-party) assessments recorded by
    EDU or HEALTH."""
    if method == AssessmentMethod.self_:
        allowed = _owns(caller, facility) or _is_edu(caller)
    elif method == AssessmentMethod.peer:
        allowed = (
            _is_edu(caller)
            or (caller.kind == ClientKind.district and caller.district_code == facility.district_code)
            or (caller.kind == ClientKind.operator and not _owns(caller, facility))
        )
    else:
        allowed = _is_edu(caller) or caller.is_bureau("HEALTH")
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
    framework = await current_framework(session=session)
    check_dimension_grades(framework, data.dimension_grades)
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
        framework_version=framework.version if framework else None,
        dimension_grades=data.dimension_grades,
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
                framework_version=assessment.framework_version,
                dimension_grades=assessment.dimension_grades,
            ),
        ),
    )
    return assessment


def check_dimension_grades(framework: QualityFramework | None, grades: dict[str, str] | None) -> None:
    """Grades by dimension name every dimension of the framework in force, and nothing else."""
    if grades is None:
        return
    if framework is None:
        raise InvalidInput(
            "dimension_grades: no quality framework is in force",
            errors=[FieldError(field="dimension_grades", message="no quality framework is in force")],
        )
    expected = {str(d["code"]) for d in framework.dimensions}
    errors = [
        FieldError(
            field=f"dimension_grades.{code}",
            message=f"is not a dimension of framework version {framework.version}",
        )
        for code in sorted(set(grades) - expected)
    ] + [
        FieldError(field=f"dimension_grades.{code}", message="is missing: every dimension is graded")
        for code in sorted(expected - set(grades))
    ]
    if errors:
        raise InvalidInput(
            "dimension_grades: " + "; ".join(f"{e.field} {e.message}" for e in errors), errors=errors
        )


async def current_framework(*, session: AsyncSession) -> QualityFramework | None:
    """The newest version: the one new assessments are recorded under."""
    newest = select(QualityFramework).order_by(QualityFramework.version.desc()).limit(1)
    return (await session.execute(newest)).scalar_one_or_none()


async def framework_version(*, session: AsyncSession, version: int) -> QualityFramework:
    framework = await session.get(QualityFramework, version)
    if framework is None:
        raise NotFound(tr("No quality framework version {version}.", version=version))
    return framework


async def frameworks(*, session: AsyncSession, page: PageParams) -> tuple[list[QualityFramework], str | None]:
    """Every version, newest first."""
    query = keyset(select(QualityFramework), [QualityFramework.version], page, descending=True)
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda f: [f.version])


async def publish_framework(
    *, session: AsyncSession, caller: Identity, data: QualityFrameworkCreate
) -> QualityFramework:
    """EDU publishes a new version; the versions before it stay exactly as they were."""
    if not _is_edu(caller):
        raise Forbidden("Quality frameworks are published by EDU.")
    # The table's own lock orders concurrent publications: the second one's insert of the same
    # version fails on the primary key and its request is retried by the caller.
    newest = (await session.execute(select(func.max(QualityFramework.version)))).scalar_one_or_none() or 0
    now = datetime.now(UTC)
    framework = QualityFramework(
        version=newest + 1,
        title=data.title,
        source=data.source,
        dimensions=[d.model_dump(mode="json") for d in data.dimensions],
        published_by=caller.client_id,
        published_at=now,
    )
    session.add(framework)
    await session.flush()
    await emit(
        session,
        QualityFrameworkPublished(
            version=framework.version, dimension_codes=[d.code for d in data.dimensions], published_at=now
        ),
    )
    return framework


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
