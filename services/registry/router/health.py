"""Health (卫生保健): a facility's entry health checks and HEALTH's yearly assessments, HEALTH's figures."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.registry.deps import FacilityDep, FacilityToChangeDep
from services.registry.schemas import (
    EntryHealthCheckRead,
    EntryHealthCheckReport,
    FacilityHealth,
    HealthAssessmentCreate,
    HealthAssessmentRead,
    HealthFigures,
)
from services.registry.service import health
from shared.clock import shanghai_today
from shared.idempotency import Reply, idempotent
from shared.identity import AuthenticatedDep, Identity, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1", tags=["health"])
Reader = Annotated[Identity, scope_guard("registry:read")]
Writer = Annotated[Identity, scope_guard("registry:write")]
Reviewer = Annotated[Identity, scope_guard("registry:review")]
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/facilities/{facility_id}/health", response_model=FacilityHealth)
async def read_facility_health(facility: FacilityDep, session: SessionDep, _caller: Reader) -> FacilityHealth:
    """The facility's health record as its profile shows it: the last twelve months of entry health
    checks and the latest 卫生保健 result of each of the last three years."""
    return await health.facility_health(session=session, facility=facility)


@router.put("/facilities/{facility_id}/entry-health-checks", response_model=EntryHealthCheckRead)
async def report_entry_health_checks(
    body: EntryHealthCheckReport, facility: FacilityToChangeDep, session: SessionDep, caller: Writer
) -> EntryHealthCheckRead:
    """The operator reports a month: children enrolled and those with a completed entry health check
    (入托体检). A second report for the month replaces the first."""
    row = await health.report_entry_checks(session=session, caller=caller, facility=facility, data=body)
    return health.to_entry_check_read(row)


@router.get("/facilities/{facility_id}/entry-health-checks", response_model=Page[EntryHealthCheckRead])
async def entry_health_checks(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[EntryHealthCheckRead]:
    """The monthly reports, newest month first."""
    rows, cursor = await health.entry_checks_of(session=session, facility=facility, page=paging)
    return Page[EntryHealthCheckRead](items=[health.to_entry_check_read(r) for r in rows], next_cursor=cursor)


@router.post(
    "/facilities/{facility_id}/health-assessments", status_code=201, response_model=HealthAssessmentRead
)
@idempotent(201)
async def record_health_assessment(
    body: HealthAssessmentCreate, facility: FacilityToChangeDep, session: SessionDep, caller: Reviewer
) -> Reply:
    """HEALTH records the year's 卫生保健 assessment: qualified (合格), basically_qualified (基本合格) or
    unqualified (不合格). Another record for the same year supersedes it; both stay on record."""
    recorded = await health.record_health_assessment(
        session=session, caller=caller, facility=facility, data=body
    )
    return Reply(recorded, {})


@router.get("/facilities/{facility_id}/health-assessments", response_model=Page[HealthAssessmentRead])
async def health_assessments(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[HealthAssessmentRead]:
    """Every 卫生保健 assessment, newest year first, superseded ones marked."""
    items, cursor = await health.health_assessments_of(session=session, facility=facility, page=paging)
    return Page[HealthAssessmentRead](items=items, next_cursor=cursor)


@router.get("/health/figures", response_model=HealthFigures)
async def read_health_figures(
    session: SessionDep,
    caller: AuthenticatedDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> HealthFigures:
    """HEALTH's figures for a year (default: this year), per district and city-wide: the share of
    enrolled children with an entry health check and the 卫生保健 results. A district reads its own."""
    district = health.check_may_read_figures(caller, district_code)
    return await health.health_figures(
        session=session,
        year=year or shanghai_today().year,
        district_code=district,
        whole_city=caller.sees_whole_city(),
    )
