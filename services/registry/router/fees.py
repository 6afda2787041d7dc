"""registry's HTTP layer for fee schedules (收费公示), change requests to licensed facts, and the
district's list of facilities flagged for fees above the inclusive cap."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from services.registry.deps import FacilityDep, FacilityToChangeDep, SettingsDep
from services.registry.schemas import ReviewCreate
from services.registry.schemas.fees import (
    ChangeRequestRead,
    ChangeRequestStatus,
    FeeCapFlag,
    FeeScheduleCreate,
    FeeScheduleRead,
    FeeStanding,
    LicensedFactsChange,
)
from services.registry.service import change_requests, fees
from shared.api import etag
from shared.clock import shanghai_today
from shared.idempotency import Reply, idempotent
from shared.identity import Identity, scope_guard
from shared.pagination import Page, PageParams, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1")
Reader = Annotated[Identity, scope_guard("registry:read")]
Writer = Annotated[Identity, scope_guard("registry:write")]
Reviewer = Annotated[Identity, scope_guard("registry:review")]
Paging = Annotated[PageParams, Depends(page_params)]
RequestId = Annotated[str, Path(max_length=64)]


@router.post("/facilities/{facility_id}/fees", status_code=201, response_model=FeeScheduleRead, tags=["fees"])
@idempotent(201)
async def record_fees(
    body: FeeScheduleCreate, facility: FacilityToChangeDep, session: SessionDep, caller: Writer
) -> Reply:
    """A new version of the facility's fee schedule (earlier ones stay readable). Published at once,
    unless the facility is inclusive (普惠) and its monthly full-day fee is above the district's cap
    for the year, or it is flagged for that already: then `status` is `pending` and EDU decides it as
    a change request (`change_request_id`)."""
    schedule, request = await fees.record_schedule(
        session=session, caller=caller, facility=facility, data=body
    )
    headers = {"Location": f"/v1/facilities/{facility.id}/fees/{schedule.version}", **etag(facility.version)}
    return Reply(fees.to_read(schedule, request.id if request else None), headers)


@router.get("/facilities/{facility_id}/fees", response_model=Page[FeeScheduleRead], tags=["fees"])
async def fee_history(
    facility: FacilityDep, session: SessionDep, _caller: Reader, paging: Paging
) -> Page[FeeScheduleRead]:
    """Every fee schedule recorded, newest version first (SAMR and EDU read any facility's)."""
    rows, cursor = await fees.history(session=session, facility=facility, page=paging)
    return Page[FeeScheduleRead](items=[fees.to_read(s, r) for s, r in rows], next_cursor=cursor)


@router.get("/facilities/{facility_id}/fees/current", response_model=FeeStanding, tags=["fees"])
async def fee_standing(facility: FacilityDep, session: SessionDep, _caller: Reader) -> FeeStanding:
    """The fees as they stand today: the schedule in force, one announced for later, one held for EDU,
    and whether the facility is flagged for fees above its district's inclusive cap."""
    return await fees.standing(session, facility, shanghai_today())


@router.get("/facilities/{facility_id}/fees/{version}", response_model=FeeScheduleRead, tags=["fees"])
async def fee_schedule(
    facility: FacilityDep,
    version: Annotated[int, Path(ge=1, le=1_000_000)],
    session: SessionDep,
    _caller: Reader,
) -> FeeScheduleRead:
    """One version of the facility's fee schedule (where a recorded schedule's Location points)."""
    return await fees.by_version(session, facility, version)


@router.get(
    "/facilities/{facility_id}/change-requests",
    response_model=Page[ChangeRequestRead],
    tags=["change requests"],
)
async def list_change_requests(
    facility: FacilityDep,
    session: SessionDep,
    _caller: Reader,
    paging: Paging,
    status: ChangeRequestStatus | None = None,
) -> Page[ChangeRequestRead]:
    """The facility's change requests with every review, newest first."""
    items, cursor = await change_requests.list_requests(
        session=session, facility=facility, status=status, page=paging
    )
    return Page[ChangeRequestRead](items=items, next_cursor=cursor)


@router.post(
    "/facilities/{facility_id}/change-requests",
    status_code=202,
    response_model=ChangeRequestRead,
    tags=["change requests"],
)
@idempotent(202)
async def request_change(
    body: LicensedFactsChange,
    facility: FacilityToChangeDep,
    session: SessionDep,
    caller: Writer,
    settings: SettingsDep,
) -> Reply:
    """Ask to change a licensed facility's licensed facts (capacity, classes, address, coordinates,
    街镇, inclusive). They apply once every licensing department approves; until then the facility's
    public and coverage facts stay as they are."""
    request = await change_requests.request_facts(
        session=session, caller=caller, facility=facility, data=body, settings=settings
    )
    location = f"/v1/facilities/{facility.id}/change-requests/{request.id}"
    return Reply(change_requests.to_read(request, []), {"Location": location})


@router.get(
    "/facilities/{facility_id}/change-requests/{request_id}",
    response_model=ChangeRequestRead,
    tags=["change requests"],
)
async def read_change_request(
    facility: FacilityDep, request_id: RequestId, session: SessionDep, _caller: Reader
) -> ChangeRequestRead:
    request = await change_requests.get_request(session, facility, request_id)
    reviews = await change_requests.reviews_of(session, [request.id])
    return change_requests.to_read(request, reviews[request.id])


@router.post(
    "/facilities/{facility_id}/change-requests/{request_id}/reviews",
    response_model=ChangeRequestRead,
    tags=["change requests"],
)
@idempotent(200)
async def review_change_request(
    body: ReviewCreate,
    facility: FacilityToChangeDep,
    request_id: RequestId,
    session: SessionDep,
    caller: Reviewer,
    settings: SettingsDep,
) -> Reply:
    """A department the request names approves or rejects; a later review by it is kept beside the
    earlier one and counts instead."""
    request = await change_requests.get_request(session, facility, request_id)
    decided = await change_requests.review(
        session=session, caller=caller, facility=facility, request=request, data=body, settings=settings
    )
    reviews = await change_requests.reviews_of(session, [decided.id])
    return Reply(change_requests.to_read(decided, reviews[decided.id]), etag(facility.version))


@router.get("/coverage/fees-over-cap", response_model=Page[FeeCapFlag], tags=["fees"])
async def fees_over_cap(
    session: SessionDep,
    caller: Reader,
    paging: Paging,
    district_code: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
) -> Page[FeeCapFlag]:
    """Inclusive facilities whose fees went above their district's cap and that EDU has not settled
    (they do not count as inclusive in coverage meanwhile): a district sees its own."""
    items, cursor = await fees.flagged(
        session=session, caller=caller, district_code=district_code, page=paging
    )
    return Page[FeeCapFlag](items=items, next_cursor=cursor)
