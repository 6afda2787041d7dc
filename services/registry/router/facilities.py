"""registry's HTTP layer for authenticated callers: parse, authorize, call the service, return."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from services.registry.deps import DirectoryDep, FacilityDep, FacilityId, FacilityToChangeDep, SettingsDep
from services.registry.schemas import (
    AgeClass,
    ApplicationRead,
    AssessmentCreate,
    AssessmentGrade,
    AssessmentRead,
    CityCoverage,
    CreditEntryCreate,
    CreditEntryRead,
    Demonstration,
    DistrictRead,
    EnrolmentReport,
    FacilityCreate,
    FacilityKind,
    FacilityRead,
    FacilityStatus,
    FacilitySummary,
    FacilityUpdate,
    FacilityVersionRead,
    InspectionRead,
    ReviewCreate,
    ReviewRead,
    ServiceMode,
    StatusChange,
    StatusChangeRead,
    TownCoverageRow,
)
from services.registry.schemas.fees import ChangeRequestRead
from services.registry.service import (
    applications,
    change_requests,
    coverage,
    credit,
    divisions,
    facilities,
    fees,
    quality,
)
from services.registry.service.search import FacilityFilters, Near
from shared.api import IfMatch, check_version, etag
from shared.errors import Forbidden, invalid
from shared.export import EXPORT_RESPONSES, ExportDep
from shared.idempotency import IdempotencyDep, Reply, idempotent
from shared.identity import AuthenticatedDep, Identity, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1")
Reader = Annotated[Identity, scope_guard("registry:read")]
Writer = Annotated[Identity, scope_guard("registry:write")]
Reviewer = Annotated[Identity, scope_guard("registry:review")]
Paging = Annotated[PageParams, Depends(page_params)]


def parse_near(near: str | None, radius_m: int | None, settings: SettingsDep) -> Near | None:
    if near is None:
        if radius_m is not None:
            raise invalid("radius_m", "is used with near=lat,lon")
        return None
    try:
        lat_text, lon_text = near.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise invalid("near", "is lat,lon in decimal degrees, e.g. 31.23,121.47") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise invalid("near", "is not a point on Earth")
    radius = radius_m if radius_m is not None else settings.default_search_radius_m
    if not 1 <= radius <= settings.max_search_radius_m:
        raise invalid("radius_m", f"is between 1 and {settings.max_search_radius_m} metres")
    return Near(lat=lat, lon=lon, radius_m=radius)


async def search_filters(
    settings: SettingsDep,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    town_code: Annotated[str | None, Query(pattern=r"^\d{9}$")] = None,
    kind: FacilityKind | None = None,
    inclusive: bool | None = None,
    status: FacilityStatus | None = None,
    free_places: Annotated[AgeClass | None, Query(description="Age class with a free place")] = None,
    service_mode: ServiceMode | None = None,
    near: Annotated[str | None, Query(description="lat,lon", max_length=64)] = None,
    radius_m: Annotated[int | None, Query(description="Default 1,000 m (the 15-minute circle)")] = None,
    grade: Annotated[
        AssessmentGrade | None, Query(description="The current grade (latest commissioned assessment)")
    ] = None,
    demonstration: Annotated[bool | None, Query(description="Demonstration facilities (示范) only")] = None,
) -> FacilityFilters:
    return FacilityFilters(
        district_code=district_code,
        town_code=town_code,
        kind=kind,
        inclusive=inclusive,
        status=status,
        free_places=free_places,
        service_mode=service_mode,
        near=parse_near(near, radius_m, settings),
        grade=grade,
        demonstration=demonstration,
    )


Filters = Annotated[FacilityFilters, Depends(search_filters)]


@router.get("/divisions", response_model=list[DistrictRead], tags=["divisions"])
async def list_divisions(session: SessionDep) -> list[DistrictRead]:
    """Shanghai's 16 districts with their 街镇 (public)."""
    return await divisions.list_divisions(session=session)


@router.post("/facilities", status_code=201, response_model=FacilityRead, tags=["facilities"])
@idempotent(201)
async def submit_facility(
    body: FacilityCreate, session: SessionDep, caller: Writer, settings: SettingsDep
) -> Reply:
    """Apply for a facility (申办): it starts as `submitted`."""
    facility = await facilities.submit_facility(session=session, caller=caller, data=body, settings=settings)
    headers = {"Location": f"/v1/facilities/{facility.id}", **etag(facility.version)}
    return Reply(facilities.to_read(facility), headers)


@router.get(
    "/facilities", response_model=Page[FacilitySummary], responses=EXPORT_RESPONSES, tags=["facilities"]
)
async def search_facilities(
    directory: DirectoryDep, caller: Reader, filters: Filters, paging: Paging, export: ExportDep
) -> Response:
    """Facilities you may see, filtered; nearest first with `near=lat,lon`. With `Accept: text/csv` or
    XLSX, every facility the filters select, as a file."""

    async def page_of(page: PageParams) -> bytes:
        return await directory.search(caller=caller, filters=filters, page=page, public=False)

    if export.wanted:
        return await export.respond_pages(page_of, name="facilities", model=FacilitySummary)
    return Response(await page_of(paging), media_type="application/json")


@router.get("/facilities/{facility_id}", response_model=FacilityRead, tags=["facilities"])
async def read_facility(facility: FacilityDep, _caller: Reader, response: Response) -> FacilityRead:
    response.headers.update(etag(facility.version))
    return facilities.to_read(facility)


@router.patch(
    "/facilities/{facility_id}",
    response_model=FacilityRead,
    responses={
        202: {
            "model": ChangeRequestRead,
            "description": "A licensed facility's licensed facts: a change request, applied once the "
            "licensing departments approve (the other fields sent applied at once)",
        }
    },
    tags=["facilities"],
)
async def edit_facility(
    body: FacilityUpdate,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
    response: Response,
    if_match: IfMatch = None,
) -> FacilityRead | Response:
    """Edit a facility you may see; every edit is a new version. Send `If-Match` to be safe from
    overwriting someone else's edit (412). A licensed facility's licensed facts (capacity, classes,
    address, coordinates, inclusive) change by review: the reply is then 202 with the change request
    (`Location` names it), and the request's other fields are applied at once."""
    licensed = None
    if change_requests.is_licensed(facility):
        direct, licensed = change_requests.split_edit(body)
    else:
        direct = body
    if direct is not None:
        facility = await facilities.update_facility(
            session=session,
            caller=caller,
            facility=facility,
            data=direct,
            if_match=if_match,
            settings=settings,
        )
        if "inclusive" in direct.model_fields_set:  # the inclusive cap binds only inclusive facilities
            await fees.inclusive_changed(session, facility)
    else:
        check_version(facility.version, if_match, what="facility")
    if licensed is None:
        response.headers.update(etag(facility.version))
        return facilities.to_read(facility)
    request = await change_requests.request_facts(
        session=session, caller=caller, facility=facility, data=licensed, settings=settings
    )
    return JSONResponse(
        change_requests.to_read(request, []).model_dump(mode="json"),
        status_code=202,
        headers={
            "Location": f"/v1/facilities/{facility.id}/change-requests/{request.id}",
            **etag(facility.version),
        },
    )


@router.get(
    "/facilities/{facility_id}/versions", response_model=Page[FacilityVersionRead], tags=["facilities"]
)
async def facility_versions(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[FacilityVersionRead]:
    """Every version of the facility, newest first."""
    rows, cursor = await facilities.versions(session=session, facility=facility, page=paging)
    items = [
        FacilityVersionRead(version=v.version, changed_at=v.changed_at, facility=v.snapshot) for v in rows
    ]
    return Page[FacilityVersionRead](items=items, next_cursor=cursor)


@router.get("/facilities/{facility_id}/application", response_model=ApplicationRead, tags=["applications"])
async def read_application(
    facility: FacilityDep, session: SessionDep, _caller: Reader, settings: SettingsDep
) -> ApplicationRead:
    reviews = await applications.reviews_of(session=session, facility=facility)
    return ApplicationRead(
        facility=facilities.to_read(facility),
        reviews=[ReviewRead.model_validate(r, from_attributes=True) for r in reviews],
        awaiting=applications.awaiting(reviews, settings)
        if facility.status == FacilityStatus.submitted
        else [],
    )


@router.post("/facilities/{facility_id}/reviews", response_model=FacilityRead, tags=["applications"])
@idempotent(200)
async def review_application(
    body: ReviewCreate,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Reviewer,
    settings: SettingsDep,
) -> Reply:
    """A required department approves or rejects; a later review by it is kept beside the earlier one
    and counts instead."""
    reviewed = await applications.review(
        session=session, caller=caller, facility=facility, data=body, settings=settings
    )
    return Reply(facilities.to_read(reviewed), etag(reviewed.version))


@router.post("/facilities/{facility_id}/status", response_model=FacilityRead, tags=["applications"])
@idempotent(200)
async def change_status(
    body: StatusChange,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Reviewer,
) -> Reply:
    """Suspend, close or reinstate (`approved`), with a reason that stays on record."""
    changed = await applications.change_status(session=session, caller=caller, facility=facility, data=body)
    return Reply(facilities.to_read(changed), etag(changed.version))


@router.get(
    "/facilities/{facility_id}/status-history", response_model=Page[StatusChangeRead], tags=["applications"]
)
async def status_history(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[StatusChangeRead]:
    """Suspensions, closures and reinstatements, oldest first."""
    rows, cursor = await facilities.status_history(session=session, facility=facility, page=paging)
    items = [StatusChangeRead.model_validate(r, from_attributes=True) for r in rows]
    return Page[StatusChangeRead](items=items, next_cursor=cursor)


@router.put("/facilities/{facility_id}/enrolment", response_model=FacilityRead, tags=["facilities"])
async def report_enrolment(
    body: EnrolmentReport,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> FacilityRead:
    """Children enrolled per age class for a month (operators report monthly)."""
    updated = await facilities.report_enrolment(
        session=session, caller=caller, facility=facility, data=body, if_match=if_match
    )
    response.headers.update(etag(updated.version))
    return facilities.to_read(updated)


@router.get("/facilities/{facility_id}/enrolment", response_model=Page[EnrolmentReport], tags=["facilities"])
async def enrolment_history(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[EnrolmentReport]:
    """The monthly reports, newest month first."""
    rows, cursor = await facilities.enrolment_history(session=session, facility=facility, page=paging)
    items = [
        EnrolmentReport(month=r.month, infant=r.infant, toddler=r.toddler, preschool=r.preschool)
        for r in rows
    ]
    return Page[EnrolmentReport](items=items, next_cursor=cursor)


@router.post(
    "/facilities/{facility_id}/assessments", status_code=201, response_model=AssessmentRead, tags=["quality"]
)
async def record_assessment(
    body: AssessmentCreate,
    facility_id: FacilityId,
    session: SessionDep,
    caller: AuthenticatedDep,
    idem: IdempotencyDep,
) -> Response:
    """Self (the operator), peer (another facility's operator, the district, EDU) or commissioned
    (EDU, HEALTH) assessment, with a grade per dimension of the quality framework in force (optional;
    the assessment records the version). The current grade is the latest commissioned one."""
    if not (caller.has_scope("registry:write") or caller.has_scope("registry:review")):
        raise Forbidden("This needs the `registry:write` or `registry:review` scope.")
    facility = await quality.facility_to_assess(
        session=session, caller=caller, facility_id=facility_id, method=body.method
    )
    if replay := await idem.replay():
        return replay
    assessment = await quality.record_assessment(session=session, caller=caller, facility=facility, data=body)
    return await idem.respond(201, AssessmentRead.model_validate(assessment, from_attributes=True), {})


@router.get("/facilities/{facility_id}/assessments", response_model=Page[AssessmentRead], tags=["quality"])
async def list_assessments(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[AssessmentRead]:
    """Self, peer and commissioned assessments, newest first."""
    rows, cursor = await quality.assessments_of(session=session, facility=facility, page=paging)
    items = [AssessmentRead.model_validate(r, from_attributes=True) for r in rows]
    return Page[AssessmentRead](items=items, next_cursor=cursor)


@router.post("/facilities/{facility_id}/demonstration", response_model=FacilityRead, tags=["quality"])
async def designate_demonstration(
    body: Demonstration, facility: FacilityToChangeDep, session: SessionDep, caller: Reviewer
) -> FacilityRead:
    """EDU designates a demonstration facility (示范), or withdraws it."""
    return facilities.to_read(
        await quality.designate(session=session, caller=caller, facility=facility, data=body)
    )


@router.get("/facilities/{facility_id}/credit-record", response_model=Page[CreditEntryRead], tags=["credit"])
async def read_credit_record(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[CreditEntryRead]:
    """The facility's credit entries, newest first."""
    rows, cursor = await credit.credit_record_page(session=session, facility_id=facility.id, page=paging)
    return Page[CreditEntryRead](items=[credit.to_entry_read(e) for e in rows], next_cursor=cursor)


@router.post(
    "/facilities/{facility_id}/credit-record",
    status_code=201,
    response_model=CreditEntryRead,
    tags=["credit"],
)
@idempotent(201)
async def write_credit_entry(
    body: CreditEntryCreate,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Reviewer,
) -> Reply:
    """A dated public entry, positive or negative, written by EDU."""
    entry = await credit.write_entry(session=session, caller=caller, facility=facility, data=body)
    return Reply(credit.to_entry_read(entry), {})


@router.get("/facilities/{facility_id}/inspections", response_model=Page[InspectionRead], tags=["credit"])
async def read_inspections(
    facility: FacilityDep, session: SessionDep, _caller: Reader, settings: SettingsDep, paging: Paging
) -> Page[InspectionRead]:
    """The inspections of the last years (as public), newest first."""
    items, cursor = await credit.inspection_history_page(
        session=session, facility_id=facility.id, years=settings.public_inspection_years, page=paging
    )
    return Page[InspectionRead](items=items, next_cursor=cursor)


@router.get("/coverage", response_model=CityCoverage, responses=EXPORT_RESPONSES, tags=["coverage"])
async def read_coverage(
    session: SessionDep,
    caller: AuthenticatedDep,
    export: ExportDep,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> CityCoverage | Response:
    """Inclusive points per 街镇, coverage rates and places per 100 children under 3 (T1, T6). With
    `Accept: text/csv` or XLSX, one row per 街镇 beside its district's figures, as a file."""
    if not (caller.has_scope("registry:read") or caller.has_scope("indicators:read")):
        raise Forbidden("This needs the `registry:read` or `indicators:read` scope.")
    city = await coverage.coverage(session=session, year=year or date.today().year)
    if export.wanted:

        async def rows(page: PageParams) -> Page[TownCoverageRow]:
            return Page[TownCoverageRow](items=coverage.coverage_rows(city))

        return await export.respond_pages(rows, name=f"coverage-{city.year}", model=TownCoverageRow)
    return city
