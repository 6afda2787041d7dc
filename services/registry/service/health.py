"""Health (卫生保健, T7): children's entry health checks (入托体检) reported monthly by the facility's
operator, and HEALTH's yearly 卫生保健 assessment of each facility. Neither is ever overwritten in
silence: a month's report is the operator's latest word for it, and a second assessment of a year is
a second row, the earlier kept and marked superseded."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.errors import StatusChangeNotAllowed
from services.registry.events import (
    EntryHealthCheckFacts,
    EntryHealthChecksReported,
    HealthAssessmentFacts,
    HealthAssessmentRecorded,
)
from services.registry.models import District, EntryHealthCheck, Facility, HealthAssessment
from services.registry.schemas import (
    DistrictHealthFigures,
    EntryHealthCheckRead,
    EntryHealthCheckReport,
    FacilityHealth,
    FacilityStatus,
    HealthAssessmentCreate,
    HealthAssessmentRead,
    HealthFigures,
    HealthResultCounts,
)
from services.registry.service.facilities import facts
from shared.clock import SHANGHAI
from shared.errors import Forbidden
from shared.events.outbox import emit
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, cut_page, keyset

# The profile shows this many recent months of entry checks and years of assessments.
PROFILE_MONTHS = 12
PROFILE_YEARS = 3


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _licensed(facility: Facility) -> None:
    if facility.status in (FacilityStatus.submitted, FacilityStatus.rejected):
        raise StatusChangeNotAllowed("Only licensed facilities keep health records.")


# ---- entry health checks (入托体检) -----------------------------------------------------------------


async def report_entry_checks(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: EntryHealthCheckReport
) -> EntryHealthCheck:
    """The facility's operator reports a month; a repeat for the month replaces its figures."""
    if caller.kind != ClientKind.operator:
        raise Forbidden("Entry health checks are reported by the facility's operator.")
    _licensed(facility)
    now = datetime.now(UTC)
    row = await session.get(EntryHealthCheck, (facility.id, data.month), with_for_update=True)
    if row is None:
        row = EntryHealthCheck(
            facility_id=facility.id, month=data.month, district_code=facility.district_code
        )
        session.add(row)
    row.children_enrolled = data.children_enrolled
    row.children_checked = data.children_checked
    row.reported_by = caller.client_id
    row.reported_at = now
    await session.flush()
    await emit(
        session,
        EntryHealthChecksReported(
            **facts(facility),
            entry_health_check=EntryHealthCheckFacts(
                month=data.month,
                children_enrolled=data.children_enrolled,
                children_checked=data.children_checked,
            ),
        ),
    )
    return row


def to_entry_check_read(row: EntryHealthCheck) -> EntryHealthCheckRead:
    return EntryHealthCheckRead(
        month=row.month,
        children_enrolled=row.children_enrolled,
        children_checked=row.children_checked,
        share_checked=_share(row.children_checked, row.children_enrolled),
        reported_at=row.reported_at,
    )


async def entry_checks_of(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[EntryHealthCheck], str | None]:
    """Newest month first."""
    query = keyset(
        select(EntryHealthCheck).where(EntryHealthCheck.facility_id == facility.id),
        [EntryHealthCheck.month],
        page,
        descending=True,
    )
    rows = (await session.execute(query)).scalars().all()
    return cut_page(rows, limit=page.limit, position_of=lambda r: [r.month])


# ---- HEALTH's yearly 卫生保健 assessment -------------------------------------------------------------


async def record_health_assessment(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: HealthAssessmentCreate
) -> HealthAssessmentRead:
    if not caller.is_bureau("HEALTH"):
        raise Forbidden("The 卫生保健 assessment is recorded by HEALTH.")
    _licensed(facility)
    assessment = HealthAssessment(
        id=str(uuid.uuid4()),
        facility_id=facility.id,
        district_code=facility.district_code,
        year=data.year,
        result=data.result.value,
        assessed_on=data.assessed_on,
        notes=data.notes,
        recorded_by=caller.client_id,
        recorded_at=datetime.now(UTC),
    )
    session.add(assessment)
    await session.flush()
    await emit(
        session,
        HealthAssessmentRecorded(
            **facts(facility),
            health_assessment=HealthAssessmentFacts(
                id=assessment.id, year=data.year, result=data.result.value, assessed_on=data.assessed_on
            ),
        ),
    )
    return _to_assessment_read(assessment, superseded=False)


def _to_assessment_read(row: HealthAssessment, *, superseded: bool) -> HealthAssessmentRead:
    return HealthAssessmentRead.model_validate(
        {**row.model_dump(), "superseded": superseded}, from_attributes=False
    )


async def _latest_ids(session: AsyncSession, facility_id: str, years: set[int]) -> set[str]:
    """The latest record of each of these years: the year's result; the others are superseded."""
    if not years:
        return set()
    rows = (
        await session.execute(
            select(HealthAssessment.id, HealthAssessment.year)
            .where(HealthAssessment.facility_id == facility_id, HealthAssessment.year.in_(years))
            .order_by(HealthAssessment.year, HealthAssessment.recorded_at.desc(), HealthAssessment.id.desc())
        )
    ).all()
    latest: dict[int, str] = {}
    for assessment_id, year in rows:
        latest.setdefault(year, assessment_id)
    return set(latest.values())


async def health_assessments_of(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[HealthAssessmentRead], str | None]:
    """Every record, newest year first and within a year the latest recorded first."""
    key = [HealthAssessment.year, HealthAssessment.recorded_at, HealthAssessment.id]
    query = keyset(
        select(HealthAssessment).where(HealthAssessment.facility_id == facility.id),
        key,
        page,
        descending=True,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda a: [a.year, a.recorded_at, a.id],
    )
    latest = await _latest_ids(session, facility.id, {r.year for r in rows})
    return [_to_assessment_read(r, superseded=r.id not in latest) for r in rows], cursor


async def facility_health(*, session: AsyncSession, facility: Facility) -> FacilityHealth:
    """What the profile shows: the last months of entry checks and the recent years' results."""
    checks, _ = await entry_checks_of(
        session=session, facility=facility, page=PageParams(limit=PROFILE_MONTHS, after=None)
    )
    this_year = datetime.now(SHANGHAI).year
    rows = (
        (
            await session.execute(
                select(HealthAssessment)
                .where(
                    HealthAssessment.facility_id == facility.id,
                    HealthAssessment.year > this_year - PROFILE_YEARS,
                )
                .order_by(
                    HealthAssessment.year.desc(),
                    HealthAssessment.recorded_at.desc(),
                    HealthAssessment.id.desc(),
                )
            )
        )
        .scalars()
        .all()
    )
    latest = await _latest_ids(session, facility.id, {r.year for r in rows})
    return FacilityHealth(
        facility_id=facility.id,
        entry_health_checks=[to_entry_check_read(r) for r in checks],
        health_assessments=[_to_assessment_read(r, superseded=False) for r in rows if r.id in latest],
    )


# ---- HEALTH's figures ------------------------------------------------------------------------------


def check_may_read_figures(caller: Identity, district_code: str | None) -> str | None:
    """Bureaus read every district; a district its own (the filter is forced to it); others nothing."""
    if caller.kind == ClientKind.district and caller.district_code:
        if district_code not in (None, caller.district_code):
            raise Forbidden("A district reads its own district's health figures.")
        return caller.district_code
    if not caller.sees_whole_city() or not (
        caller.has_scope("registry:read") or caller.has_scope("indicators:read")
    ):
        raise Forbidden("Health figures are read by the bureaus and the districts.")
    return district_code


async def health_figures(
    *, session: AsyncSession, year: int, district_code: str | None, whole_city: bool = True
) -> HealthFigures:
    """Per district: licensed facilities at the year's end; entry checks as each facility's latest
    month reported in the year; the year's 卫生保健 results, each facility's latest record. `city`
    spans every district for a whole-city reader, else the one district."""
    year_end = datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
    districts = (await session.execute(select(District.code, District.name).order_by(District.code))).all()

    # Compared here, not in SQL: SQLite keeps the times as text, with or without an offset.
    licensed: Counter[str] = Counter()
    for code, approved_at in (
        await session.execute(
            select(Facility.district_code, Facility.approved_at).where(
                Facility.status == FacilityStatus.approved.value, Facility.approved_at.is_not(None)
            )
        )
    ).all():
        if (approved_at if approved_at.tzinfo else approved_at.replace(tzinfo=UTC)) < year_end:
            licensed[code] += 1

    last_month = (
        select(EntryHealthCheck.facility_id, func.max(EntryHealthCheck.month).label("month"))
        .where(EntryHealthCheck.month.between(f"{year}-01", f"{year}-12"))
        .group_by(EntryHealthCheck.facility_id)
        .subquery()
    )
    reporting: Counter[str] = Counter()
    enrolled: Counter[str] = Counter()
    checked: Counter[str] = Counter()
    for code, facilities, children, with_check in (
        await session.execute(
            select(
                EntryHealthCheck.district_code,
                func.count(),
                func.sum(EntryHealthCheck.children_enrolled),
                func.sum(EntryHealthCheck.children_checked),
            )
            .join(
                last_month,
                and_(
                    last_month.c.facility_id == EntryHealthCheck.facility_id,
                    last_month.c.month == EntryHealthCheck.month,
                ),
            )
            .group_by(EntryHealthCheck.district_code)
        )
    ).all():
        reporting[code], enrolled[code], checked[code] = facilities, int(children or 0), int(with_check or 0)

    # Each facility's latest record of the year decides its result.
    records = (
        await session.execute(
            select(HealthAssessment.facility_id, HealthAssessment.district_code, HealthAssessment.result)
            .where(HealthAssessment.year == year)
            .order_by(
                HealthAssessment.facility_id, HealthAssessment.recorded_at.desc(), HealthAssessment.id.desc()
            )
        )
    ).all()
    result_of: dict[str, tuple[str, str]] = {}
    for facility_id, code, result in records:
        result_of.setdefault(facility_id, (code, result))
    results: Counter[tuple[str, str]] = Counter(result_of.values())

    def area(code: str, name: str, codes: list[str]) -> DistrictHealthFigures:
        children = sum(enrolled[c] for c in codes)
        with_check = sum(checked[c] for c in codes)
        counts = HealthResultCounts(
            **{
                r: sum(n for (c, res), n in results.items() if c in codes and res == r)
                for r in HealthResultCounts.model_fields
            }
        )
        return DistrictHealthFigures(
            code=code,
            name=name,
            facilities_licensed=sum(licensed[c] for c in codes),
            facilities_reporting=sum(reporting[c] for c in codes),
            children_enrolled=children,
            children_checked=with_check,
            share_checked=_share(with_check, children),
            facilities_assessed=counts.qualified + counts.basically_qualified + counts.unqualified,
            results=counts,
        )

    all_codes = [code for code, _ in districts]
    city_codes = all_codes if whole_city else [c for c in all_codes if c == district_code]
    return HealthFigures(
        year=year,
        city=area("310000", "上海市", city_codes),
        districts=[area(code, name, [code]) for code, name in districts if district_code in (None, code)],
    )
